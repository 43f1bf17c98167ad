"""Deleting a team (API, admin action, `manage.py teams delete`): refused (409, naming how many) while
any of its runs may still work; otherwise its keys, runs (everything of them), members and the team
row go, in the background, the team row last; its audit records stay. Only its admins may: a member
gets a 403, another team's member a 404."""

from io import StringIO

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.team_deletion import DELETE_TEAM_TASK, team_rows_delete
from apps.audit.models import AuditRecord
from apps.keys.models import ProviderKey
from apps.runs.models import Run
from apps.runs.services.deletion import DELETE_RUN_TASK
from apps.teams.models import Membership, Team
from tests.factories import make_key, make_run
from tests.storage_helpers import ended_run, rows_of

pytestmark = pytest.mark.django_db

TEAMS = "/api/v1/teams/"


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def queued_tasks() -> list[str]:
    """The task names waiting on the broker (no worker runs in these tests)."""
    import json

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    names = []
    for key in client.keys("*"):
        if client.type(key) == b"list":
            for message in client.lrange(key, 0, -1):
                names.append(json.loads(message)["headers"]["task"])
    return names


@pytest.fixture
def acme_offline_key(acme, alice):
    return make_key(alice, team=acme, label="acme offline")


def test_a_team_with_a_working_run_is_refused_and_nothing_changes(alice, acme, acme_offline_key):
    ended_run(alice, acme_offline_key, 2, team=acme)
    working = make_run(alice, acme_offline_key, ["still to do"], team=acme)
    response = api(alice).delete(f"{TEAMS}{acme.pk}/")
    assert response.status_code == 409
    message = response.json()["error"]["message"]
    assert "1 run(s) that may still work" in message and "cancel them first" in message
    acme.refresh_from_db()
    assert acme.deleting_at is None
    assert Membership.objects.filter(team=acme).count() == 3
    assert not Run.objects.filter(team=acme, deleting_at__isnull=False).exists()
    assert Run.objects.get(pk=working.pk).status != "canceled"
    assert ProviderKey.objects.filter(pk=acme_offline_key.pk).exists()
    assert not AuditRecord.objects.exists()


def test_deleting_an_ended_team_removes_its_runs_keys_members_and_the_team_and_keeps_its_audit_rows(
    alice, bob, dave, acme, globex, acme_offline_key, clean_broker, django_capture_on_commit_callbacks
):
    runs = [ended_run(alice, acme_offline_key, 3, team=acme), ended_run(bob, acme_offline_key, 2, team=acme)]
    personal_key = make_key(alice, label="alice's own")
    personal = ended_run(alice, personal_key, 2)
    theirs = ended_run(dave, make_key(dave, team=globex, label="globex"), 2, team=globex)
    before_personal, before_theirs = rows_of(personal.pk), rows_of(theirs.pk)
    members = f"{TEAMS}{acme.pk}/members/"
    assert api(alice).post(f"{TEAMS}{acme.pk}/limit/", {"limit_usd": "9"}, format="json").status_code == 200
    assert api(alice).patch(f"{members}{bob.pk}/", {"role": "viewer"}, format="json").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        assert api(alice).delete(f"{TEAMS}{acme.pk}/").status_code == 202
    # At once: nobody reaches it, its runs are marked deleting, and the work is queued.
    assert api(alice).get(f"{TEAMS}{acme.pk}/").status_code == 404
    assert acme.pk not in [t["id"] for t in api(alice).get(TEAMS).json()]
    assert not Membership.objects.filter(team=acme).exists()
    assert not Run.objects.filter(team=acme, deleting_at__isnull=True).exists()
    queued = queued_tasks()
    assert queued.count(DELETE_RUN_TASK) == 2 and queued.count(DELETE_TEAM_TASK) == 1
    row = AuditRecord.objects.get(action="team.delete")
    assert (row.team_id, row.object_id, row.actor_name, row.channel) == (
        acme.pk, str(acme.pk), "alice", "api"
    )
    assert row.changes["after"]["runs_deleted"] == 2 and row.changes["after"]["keys_deleted"] == 1
    assert row.changes["before"]["members"] == ["alice (admin)", "bob (viewer)", "carol (viewer)"]

    assert team_rows_delete(team_id=acme.pk) == {"runs": 2, "pipelines": 0}

    assert not Team.objects.filter(pk=acme.pk).exists()
    assert not ProviderKey.objects.filter(pk=acme_offline_key.pk).exists()
    for run in runs:
        assert set(rows_of(run.pk).values()) == {0}
    assert rows_of(personal.pk) == before_personal and rows_of(theirs.pk) == before_theirs
    assert ProviderKey.objects.filter(pk=personal_key.pk).exists()
    assert Team.objects.filter(pk=globex.pk).exists()
    # Its audit rows stay, with the team's id.
    assert set(AuditRecord.objects.filter(team_id=acme.pk).values_list("action", flat=True)) == {
        "team.limit", "team.member_role", "team.delete"
    }
    assert team_rows_delete(team_id=acme.pk) == {"runs": 0, "pipelines": 0}  # twice: nothing


def test_a_member_gets_a_403_and_another_teams_member_a_404(bob, carol, dave, acme, acme_offline_key):
    ended_run(bob, acme_offline_key, 2, team=acme)
    refused = api(bob).delete(f"{TEAMS}{acme.pk}/")
    assert refused.status_code == 403
    assert "only its admins" in refused.json()["error"]["message"]
    assert api(carol).delete(f"{TEAMS}{acme.pk}/").status_code == 403
    assert api(dave).delete(f"{TEAMS}{acme.pk}/").status_code == 404
    acme.refresh_from_db()
    assert acme.deleting_at is None and Membership.objects.filter(team=acme).count() == 3
    assert not Run.objects.filter(team=acme, deleting_at__isnull=False).exists()
    assert not AuditRecord.objects.exists()


def test_the_command_deletes_a_team_and_records_who_asked(alice, acme, acme_offline_key, clean_broker):
    working = make_run(alice, acme_offline_key, ["still to do"], team=acme)
    with pytest.raises(CommandError, match="1 run\\(s\\) that may still work: cancel them first"):
        call_command("teams", "delete", "acme", "--as", "alice", stdout=StringIO())
    assert not AuditRecord.objects.exists()
    call_command("runs", "cancel", str(working.pk), "--as", "alice", stdout=StringIO())
    Run.objects.filter(pk=working.pk).update(status="canceled")  # its cancel settled (no worker here)

    call_command("teams", "delete", "acme", "--as", "alice", stdout=StringIO())
    row = AuditRecord.objects.get(action="team.delete")
    assert (row.channel, row.actor_name, row.team_id) == ("command", "alice", acme.pk)
    team_rows_delete(team_id=acme.pk)
    assert not Team.objects.filter(pk=acme.pk).exists()
    assert not Run.objects.filter(pk=working.pk).exists()
    with pytest.raises(CommandError, match="No team"):
        call_command("teams", "add", "acme", "bob", "--as", "alice", stdout=StringIO())


def test_the_admin_action_deletes_a_team(client, staff, alice, acme, acme_offline_key, clean_broker):
    ended_run(alice, acme_offline_key, 2, team=acme)
    client.force_login(staff)
    response = client.post(
        reverse("admin:teams_team_changelist"),
        {"action": "delete_in_background", "_selected_action": [str(acme.pk)]},
    )
    assert response.status_code == 302
    acme.refresh_from_db()
    assert acme.deleting_at is not None
    assert (AuditRecord.objects.get(action="team.delete").channel) == "admin"
    team_rows_delete(team_id=acme.pk)
    assert not Team.objects.filter(pk=acme.pk).exists()


def test_a_teams_pipeline_is_refused_while_it_moves_and_goes_with_the_team(
    alice, acme, acme_offline_key, django_capture_on_commit_callbacks
):
    from apps.pipelines.models import Pipeline, PipelineItem, PipelineStep
    from apps.pipelines.services.control import pipeline_cancel
    from tests.pipelines.helpers import make_pipeline, step

    pipeline = make_pipeline(alice, acme_offline_key, [step("first"), step("second")],
                             {"x": "one", "y": "two"}, team=acme, dispatch=False)
    step_runs = list(PipelineStep.objects.filter(pipeline=pipeline).values_list("run_id", flat=True))
    refused = api(alice).delete(f"{TEAMS}{acme.pk}/")
    assert refused.status_code == 409
    assert "cancel them first" in refused.json()["error"]["message"]
    assert Team.objects.get(pk=acme.pk).deleting_at is None

    with django_capture_on_commit_callbacks(execute=True):  # the cancel settles after commit
        pipeline_cancel(pipeline_id=pipeline.pk)
    pipeline.refresh_from_db()
    assert pipeline.status == "canceled"
    assert not Run.objects.filter(pk__in=step_runs).exclude(status="canceled").exists()
    assert api(alice).delete(f"{TEAMS}{acme.pk}/").status_code == 202
    assert team_rows_delete(team_id=acme.pk) == {"runs": 2, "pipelines": 1}
    assert not Pipeline.objects.filter(pk=pipeline.pk).exists()
    assert not PipelineItem.objects.filter(pipeline_id=pipeline.pk).exists()
    assert not Run.objects.filter(pk__in=step_runs).exists()
    assert not Team.objects.filter(pk=acme.pk).exists()
