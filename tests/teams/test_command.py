"""`manage.py teams`: the team admin's operations for an operator, through the same services."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.teams.models import Membership, Role, Team

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("teams", *args, stdout=out)
    return out.getvalue()


def test_create_add_and_limit(alice, bob):
    run("create", "initech", "--admin", "alice")
    run("add", "initech", "bob@example.com", "--role", "viewer")
    run("limit", "initech", "250", "--period", "rolling_days", "--window-days", "30")
    team = Team.objects.get(name="initech")
    assert Membership.objects.get(team=team, user=bob).role == Role.VIEWER
    assert (str(team.limit_usd), team.period, team.window_days) == ("250.0000", "rolling_days", 30)


def test_a_negative_limit_is_refused_naming_the_field(acme):
    with pytest.raises(CommandError, match="limit_usd: a limit cannot be negative"):
        run("limit", "acme", "-5")
    acme.refresh_from_db()
    assert acme.limit_usd is None


def test_a_role_that_does_not_exist_is_refused(acme, dave):
    with pytest.raises(CommandError, match="role: 'boss' is not a role"):
        run("add", "acme", "dave", "--role", "boss")
    assert not Membership.objects.filter(user=dave).exists()


def test_submit_names_a_team_and_one_of_its_keys(acme, bob, tmp_path):
    from apps.runs.models import Run
    from tests.factories import make_key

    make_key(bob, team=acme, label="shared")
    path = tmp_path / "blocks.jsonl"
    path.write_text('{"uid": "a", "input": "hello"}\n')
    call_command("submit", str(path), "--user", "bob", "--team", "acme", "--key", "shared", stdout=StringIO())
    assert Run.objects.get().team == acme


def test_submit_as_a_viewer_is_refused_saying_why(acme, carol, tmp_path):
    from apps.runs.models import Run
    from tests.factories import make_key

    make_key(carol, team=acme, label="shared")
    path = tmp_path / "blocks.jsonl"
    path.write_text('{"uid": "a", "input": "hello"}\n')
    with pytest.raises(CommandError, match="you are a viewer of team acme"):
        call_command("submit", str(path), "--user", "carol", "--team", "acme", "--key", "shared")
    assert not Run.objects.exists()


def test_the_admin_lists_teams_and_shows_a_team_with_its_members(acme, staff, client):
    client.force_login(staff)
    assert client.get("/admin/teams/team/").status_code == 200
    page = client.get(f"/admin/teams/team/{acme.pk}/change/")
    assert page.status_code == 200
    assert "carol in acme (viewer)" in page.content.decode()
