"""Membership changes are audited, through the API and `manage.py teams`: one row each, with the team's
id, what changed before and after; a refused change records nothing. A team's admins read their
team's rows of the trail (list and CSV), not another team's; its members and viewers get a 403."""

import csv
import io
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from apps.audit.models import AuditRecord
from apps.audit.services import Actor, record
from apps.teams.models import Membership, Role

pytestmark = pytest.mark.django_db

TEAMS = "/api/v1/teams/"
AUDIT = "/api/v1/audit/"


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def rows() -> list[tuple]:
    fields = ("action", "object_type", "object_id", "team_id", "channel")
    return list(AuditRecord.objects.order_by("id").values_list(*fields))


def test_every_membership_operation_through_the_api_is_recorded(alice, dave, carol):
    client = api(alice)
    created = client.post(TEAMS, {"name": "initech"}, format="json")
    assert created.status_code == 201
    team_id = created.json()["id"]
    members = f"{TEAMS}{team_id}/members/"
    assert client.post(members, {"user": "dave", "role": "viewer"}, format="json").status_code == 201
    assert client.patch(f"{members}{dave.pk}/", {"role": "member"}, format="json").status_code == 200
    assert client.post(f"{TEAMS}{team_id}/limit/", {"limit_usd": "500"}, format="json").status_code == 200
    assert (
        client.post(f"{members}{dave.pk}/limit/", {"limit_usd": "50", "period": "rolling_days",
                                                   "window_days": 7}, format="json").status_code
        == 200
    )
    assert client.post(members, {"user": "carol", "role": "viewer"}, format="json").status_code == 201
    assert client.delete(f"{members}{carol.pk}/").status_code == 204
    assert api(dave).delete(f"{members}{dave.pk}/").status_code == 204  # dave leaves

    t = str(team_id)
    assert rows() == [
        ("team.create", "team", t, team_id, "api"),
        ("team.member_add", "team_member", str(dave.pk), team_id, "api"),
        ("team.member_role", "team_member", str(dave.pk), team_id, "api"),
        ("team.limit", "team", t, team_id, "api"),
        ("team.member_limit", "team_member", str(dave.pk), team_id, "api"),
        ("team.member_add", "team_member", str(carol.pk), team_id, "api"),
        ("team.member_remove", "team_member", str(carol.pk), team_id, "api"),
        ("team.member_leave", "team_member", str(dave.pk), team_id, "api"),
    ]
    by_action = {row.action: row for row in AuditRecord.objects.all()}
    assert by_action["team.create"].changes["after"]["admin"] == "alice"
    assert by_action["team.member_role"].changes == {
        "before": {"role": "viewer"}, "after": {"role": "member"}
    }
    assert by_action["team.limit"].changes == {
        "before": {"limit_usd": None}, "after": {"limit_usd": "500.0000"}
    }
    assert by_action["team.member_limit"].changes == {
        "before": {"limit_usd": None, "period": "month", "window_days": None},
        "after": {"limit_usd": "50.0000", "period": "rolling_days", "window_days": 7},
    }
    assert by_action["team.member_leave"].changes["before"]["username"] == "dave"
    assert by_action["team.member_leave"].changes["after"] == {}
    assert by_action["team.member_leave"].actor_name == "dave"
    assert by_action["team.member_remove"].actor_name == "alice"


def test_a_refused_membership_change_records_nothing(alice, bob, carol, acme):
    members = f"{TEAMS}{acme.pk}/members/"
    # a role that does not exist (400), a member added twice (400), a member changing roles (403),
    # the last admin demoted (409), a negative limit (400)
    assert api(alice).post(members, {"user": "dave", "role": "boss"}, format="json").status_code == 400
    assert api(alice).post(members, {"user": "bob"}, format="json").status_code == 400
    assert api(bob).patch(f"{members}{carol.pk}/", {"role": "admin"}, format="json").status_code == 403
    assert api(alice).patch(f"{members}{alice.pk}/", {"role": "member"}, format="json").status_code == 409
    assert api(alice).delete(f"{members}{alice.pk}/").status_code == 409
    assert api(alice).post(f"{TEAMS}{acme.pk}/limit/", {"limit_usd": "-1"}, format="json").status_code == 400
    assert api(alice).post(TEAMS, {"name": "acme"}, format="json").status_code == 400
    assert not AuditRecord.objects.exists()
    assert Membership.objects.get(team=acme, user=alice).role == Role.ADMIN


def run(*args: str) -> str:
    out = StringIO()
    call_command("teams", *args, stdout=out)
    return out.getvalue()


def test_every_membership_operation_through_the_command_is_recorded(alice, bob, dave, acme):
    run("create", "initech", "--admin", "alice", "--as", "alice")
    run("add", "initech", "dave", "--role", "viewer", "--as", "alice")
    run("role", "initech", "dave", "member", "--as", "alice")
    run("limit", "initech", "100", "--as", "alice")
    run("limit", "initech", "10", "--member", "dave", "--as", "alice")
    run("remove", "initech", "dave")  # without --as: the OS user
    recorded = AuditRecord.objects.order_by("id")
    assert [(r.action, r.channel) for r in recorded] == [
        ("team.create", "command"),
        ("team.member_add", "command"),
        ("team.member_role", "command"),
        ("team.limit", "command"),
        ("team.member_limit", "command"),
        ("team.member_remove", "command"),
    ]
    team_id = recorded[0].team_id
    assert team_id is not None and all(r.team_id == team_id for r in recorded)
    assert [r.actor_name for r in recorded][:5] == ["alice"] * 5
    assert recorded[0].actor_id == alice.pk
    assert recorded.last().actor_name not in ("", "alice")
    assert recorded[2].changes == {"before": {"role": "viewer"}, "after": {"role": "member"}}


def test_a_refused_command_records_nothing(acme, dave):
    with pytest.raises(Exception, match="not a role"):
        run("add", "acme", "dave", "--role", "boss", "--as", "alice")
    with pytest.raises(Exception, match="no user named"):
        run("add", "acme", "dave", "--as", "nobody")
    assert not AuditRecord.objects.exists()
    assert not Membership.objects.filter(user=dave).exists()


def test_a_team_admin_reads_their_teams_rows_and_not_another_teams(alice, bob, carol, dave, acme, globex):
    acme_members = f"{TEAMS}{acme.pk}/members/"
    globex_members = f"{TEAMS}{globex.pk}/members/"
    changed = api(alice).patch(f"{acme_members}{carol.pk}/", {"role": "member"}, format="json")
    assert changed.status_code == 200
    assert api(dave).post(globex_members, {"user": "bob", "role": "viewer"}, format="json").status_code == 201
    # A row with no team (a personal run's) is nobody's but staff's.
    record(actor=Actor(user_id=alice.pk, name="alice", channel="api"), action="run.cancel",
           object_type="run", object_id="x")

    listed = api(alice).get(AUDIT)
    assert listed.status_code == 200
    results = listed.json()["results"]
    assert {row["team_id"] for row in results} == {acme.pk}
    assert "team.member_role" in {row["action"] for row in results}

    exported = api(alice).get(f"{AUDIT}export/")
    assert exported.status_code == 200
    table = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert table and {row["team_id"] for row in table} == {str(acme.pk)}

    # Asking for another team's rows by filter finds none.
    assert api(alice).get(AUDIT, {"team_id": globex.pk}).json()["results"] == []
    assert {row["team_id"] for row in api(dave).get(AUDIT).json()["results"]} == {globex.pk}
    # A member and a viewer of acme (not its admins) may not read the trail.
    assert api(bob).get(AUDIT).status_code == 403
    assert api(bob).get(f"{AUDIT}export/").status_code == 403


def test_saves_in_the_admin_are_recorded(client, staff, alice, bob, carol, dave, acme):
    client.force_login(staff)
    rows_ = list(Membership.objects.filter(team=acme).order_by("pk"))
    data = {
        "name": "acme", "limit_usd": "300", "period": "month", "window_days": "", "webhook_url": "",
        "memberships-TOTAL_FORMS": str(len(rows_) + 1), "memberships-INITIAL_FORMS": str(len(rows_)),
        "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
    }
    changes = {bob.pk: {"DELETE": "on"}, carol.pk: {"role": "member"}}
    for n, row in enumerate([*rows_, None]):
        fields = {"id": row.pk if row else "", "team": acme.pk, "user": row.user_id if row else dave.pk,
                  "role": row.role if row else "viewer", "limit_usd": "", "period": "month",
                  "window_days": ""}
        fields.update(changes.get(row.user_id, {}) if row else {})
        data.update({f"memberships-{n}-{k}": v for k, v in fields.items()})
    response = client.post(reverse("admin:teams_team_change", args=[acme.pk]), data)
    assert response.status_code == 302, response.content[:3000]
    recorded = {(r.action, r.object_id): r for r in AuditRecord.objects.all()}
    assert set(recorded) == {
        ("team.limit", str(acme.pk)),
        ("team.member_remove", str(bob.pk)),
        ("team.member_role", str(carol.pk)),
        ("team.member_add", str(dave.pk)),
    }
    assert all(r.channel == "admin" and r.team_id == acme.pk for r in recorded.values())
    assert recorded["team.member_role", str(carol.pk)].changes == {
        "before": {"role": "viewer"}, "after": {"role": "member"}
    }
    assert recorded["team.limit", str(acme.pk)].changes["after"] == {"limit_usd": "300.0000"}


def test_changes_to_a_teams_runs_and_keys_carry_the_team_for_its_admins(alice, bob, dave, acme, globex):
    from tests.factories import make_key, make_run

    key = make_key(alice, team=acme, label="acme offline")
    run = make_run(bob, key, ["one"], team=acme)
    assert api(bob).post(reverse("run-cancel", args=[run.pk])).status_code == 200
    assert api(alice).patch(f"/api/v1/keys/{key.pk}/", {"label": "renamed"}, format="json").status_code == 200
    assert set(AuditRecord.objects.values_list("action", "team_id")) == {
        ("run.cancel", acme.pk), ("key.update", acme.pk)
    }
    assert {row["action"] for row in api(alice).get(AUDIT).json()["results"]} == {"run.cancel", "key.update"}
    assert api(dave).get(AUDIT).json()["results"] == []
