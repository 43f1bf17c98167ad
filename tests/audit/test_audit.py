"""The audit trail: a row for every change a person makes (API, admin action, command), with who,
what changed (never a secret), when, the channel and the address; nothing for a refused change;
append-only in PostgreSQL itself; readable by staff with the permission, as JSON and CSV."""

import csv
import getpass
import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from rest_framework.test import APIClient

from apps.audit.models import AuditRecord
from apps.audit.services import Actor, record
from apps.runs.models import Run
from apps.runs.transitions import PausedCause
from tests.factories import SECRET, make_run
from tests.failures.helpers import settle
from tests.storage_helpers import ended_run

pytestmark = pytest.mark.django_db

NEW_SECRET = "sk-ant-mock-rotated-abcdef"


def client_for(user) -> APIClient:
    client = APIClient(REMOTE_ADDR="203.0.113.9")
    client.force_authenticate(user)
    return client


def last() -> AuditRecord:
    return AuditRecord.objects.order_by("-id").first()


# --- append-only ----------------------------------------------------------------------------------------


def a_record() -> AuditRecord:
    return record(
        actor=Actor(user_id=1, name="someone", channel="command"),
        action="run.cancel",
        object_type="run",
        object_id="x",
        before={"status": "running"},
        after={"status": "canceling"},
    )


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_records SET action = 'run.nothing'", "DELETE FROM audit_records"]
)
def test_postgresql_refuses_to_change_or_delete_an_audit_row(statement):
    row = a_record()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    row.refresh_from_db()
    assert row.action == "run.cancel"


def test_the_orm_cannot_change_or_delete_one_either():
    row = a_record()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditRecord.objects.filter(pk=row.pk).update(object_id="y")
    with pytest.raises(DatabaseError), transaction.atomic():
        row.delete()
    assert AuditRecord.objects.filter(pk=row.pk, object_id="x").exists()


# --- the API --------------------------------------------------------------------------------------------


def test_every_run_operation_through_the_api_is_recorded(owner, offline_key):
    client = client_for(owner)
    created = client.post(
        reverse("run-list"),
        {"key": offline_key.pk, "model": "claude-haiku-4-5", "blocks": [{"input": "x"}, {"input": "y"}]},
        format="json",
    )
    run_id = created.json()["id"]
    assert (last().action, last().object_id, last().changes["after"]["status"]) == (
        "run.create",
        run_id,
        "queued",
    )

    assert (
        client.post(reverse("run-budget", args=[run_id]), {"max_cost_usd": "2.5"}, format="json").status_code
        == 200
    )
    assert last().changes == {"before": {"max_cost_usd": None}, "after": {"max_cost_usd": "2.5000"}}

    Run.objects.filter(pk=run_id).pause(cause=PausedCause.KEY_BLOCKED, reason="billing")
    assert client.post(reverse("run-resume", args=[run_id])).status_code == 200
    assert last().action == "run.resume"
    assert last().changes["before"]["status"] == "paused" and last().changes["after"]["status"] == "running"

    assert client.post(reverse("run-cancel", args=[run_id])).status_code == 200
    assert (last().action, last().changes["after"]["status"]) == ("run.cancel", "canceled")

    assert (
        client.post(reverse("run-reseed", args=[run_id]), {"scope": "all"}, format="json").status_code == 200
    )
    assert (last().action, last().changes["after"]["scope"], last().changes["after"]["current_pass"]) == (
        "run.reseed",
        "all",
        2,
    )

    client.post(reverse("run-cancel", args=[run_id]))
    assert client.delete(reverse("run-detail", args=[run_id])).status_code == 202
    row = last()
    assert (row.action, row.object_type, row.object_id) == ("run.delete", "run", run_id)
    assert (row.actor_id, row.actor_name, row.channel, row.remote_address) == (
        owner.pk,
        "owner",
        "api",
        "203.0.113.9",
    )
    actions = list(
        AuditRecord.objects.filter(object_id=run_id).order_by("id").values_list("action", flat=True)
    )
    assert actions == [
        "run.create",
        "run.budget",
        "run.resume",
        "run.cancel",
        "run.reseed",
        "run.cancel",
        "run.delete",
    ]


def test_a_refused_operation_records_nothing(owner, offline_key):
    run = ended_run(owner, offline_key, 2)
    assert client_for(owner).post(reverse("run-cancel", args=[run.pk])).status_code == 409
    assert not AuditRecord.objects.exists()


def test_key_changes_are_recorded_without_the_secret(owner):
    client = client_for(owner)
    created = client.post(
        reverse("key-list"), {"label": "main", "secret": SECRET + "-long-enough-0001"}, format="json"
    )
    assert created.status_code == 201, created.content
    key_id = created.json()["id"]
    client.patch(reverse("key-detail", args=[key_id]), {"label": "renamed"}, format="json")
    client.patch(reverse("key-detail", args=[key_id]), {"secret": NEW_SECRET}, format="json")
    client.delete(reverse("key-detail", args=[key_id]))

    rows = AuditRecord.objects.filter(object_type="key", object_id=str(key_id)).order_by("id")
    assert list(rows.values_list("action", flat=True)) == [
        "key.create",
        "key.update",
        "key.rotate",
        "key.delete",
    ]
    assert rows[1].changes == {"before": {"label": "main"}, "after": {"label": "renamed"}}
    assert rows[2].changes["after"]["suffix"] == NEW_SECRET[-4:]
    text = str(list(rows.values_list("changes", flat=True)))
    assert SECRET not in text and NEW_SECRET not in text and "ciphertext" not in text


def test_a_webhook_secret_rotation_is_recorded_without_the_secret(owner):
    response = client_for(owner).post(reverse("webhook-secret"))
    assert response.status_code == 201
    row = last()
    assert (row.action, row.changes["after"]) == (
        "webhook_secret.rotate",
        {"suffix": response.json()["suffix"]},
    )
    assert response.json()["secret"] not in str(row.changes)


def test_resolving_and_replaying_a_failure_are_recorded(owner, offline_key):
    run = settle(make_run(owner, offline_key, ["a", "b"], max_attempts=1), fail={"b1"})
    from apps.failures.models import PipelineFailure

    failure = PipelineFailure.objects.get(run=run)
    client = client_for(owner)
    assert client.post(reverse("failure-replay", args=[failure.pk])).status_code == 200
    assert (last().action, last().object_id) == ("failure.replay", str(failure.pk))
    settle(run, fail={"b1"})
    failure = PipelineFailure.objects.filter(run=run, resolved_at__isnull=True).get()
    assert (
        client.post(
            reverse("failure-resolve", args=[failure.pk]), {"note": "known bad input"}, format="json"
        ).status_code
        == 200
    )
    assert last().action == "failure.resolve"
    assert last().changes["after"]["state"] == "resolved"


# --- the admin and the command line ---------------------------------------------------------------------


def test_an_admin_action_is_recorded_with_the_admin_channel(client, staff, owner, offline_key):
    run = make_run(owner, offline_key, ["one"])
    client.force_login(staff)
    client.post(
        reverse("admin:runs_run_changelist"),
        {"action": "cancel_runs", "_selected_action": [str(run.pk)]},
        REMOTE_ADDR="198.51.100.7",
    )
    row = last()
    assert (row.action, row.channel, row.actor_name, row.remote_address) == (
        "run.cancel",
        "admin",
        "staff",
        "198.51.100.7",
    )


def test_the_admin_delete_action_is_recorded(client, staff, owner, offline_key):
    run = ended_run(owner, offline_key, 2)
    client.force_login(staff)
    client.post(
        reverse("admin:runs_run_changelist"), {"action": "delete_runs", "_selected_action": [str(run.pk)]}
    )
    assert (last().action, last().channel) == ("run.delete", "admin")
    assert Run.objects.get(pk=run.pk).deleting_at is not None


def test_a_command_is_recorded_as_the_user_named_by_as(staff, owner, offline_key):
    run = make_run(owner, offline_key, ["one"])
    call_command("runs", "cancel", str(run.pk), "--as", "staff")
    row = last()
    assert (row.action, row.channel, row.actor_id, row.actor_name, row.remote_address) == (
        "run.cancel",
        "command",
        staff.pk,
        "staff",
        "",
    )


def test_a_command_without_as_is_recorded_as_the_os_user(owner, offline_key):
    run = make_run(owner, offline_key, ["one"])
    call_command("runs", "budget", str(run.pk), "--max-cost-usd", "1.00")
    assert (last().action, last().actor_name, last().channel) == ("run.budget", getpass.getuser(), "command")


# --- reading it -----------------------------------------------------------------------------------------


@pytest.fixture
def auditor(db):
    user = get_user_model().objects.create_user("auditor", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_auditrecord"))
    return user


def test_staff_with_the_permission_read_the_trail_and_export_it(auditor):
    a_record()
    listed = client_for(auditor).get(reverse("audit-list"), {"object_type": "run"})
    assert listed.status_code == 200
    assert [r["action"] for r in listed.json()["results"]] == ["run.cancel"]
    exported = client_for(auditor).get(reverse("audit-export"))
    assert exported.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert rows[0][:3] == ["id", "at", "actor_id"] and rows[1][6] == "run.cancel"


def test_staff_without_the_permission_and_users_cannot_read_it(owner, db):
    plain_staff = get_user_model().objects.create_user("plainstaff", password="x", is_staff=True)
    for user in (owner, plain_staff):
        assert client_for(user).get(reverse("audit-list")).status_code == 403
        assert client_for(user).get(reverse("audit-export")).status_code == 403


def test_the_admin_shows_the_trail_read_only(client, staff):
    row = a_record()
    client.force_login(staff)
    assert client.get(reverse("admin:audit_auditrecord_changelist")).status_code == 200
    page = client.get(reverse("admin:audit_auditrecord_change", args=[row.pk]))
    assert page.status_code == 200 and b"canceling" in page.content
    assert (
        client.post(reverse("admin:audit_auditrecord_delete", args=[row.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert AuditRecord.objects.filter(pk=row.pk).exists()


def test_a_key_saved_in_the_admin_is_recorded_without_the_secret(client, staff, owner):
    client.force_login(staff)
    response = client.post(
        reverse("admin:keys_providerkey_add"),
        {"owner": owner.pk, "label": "from the admin", "provider": "anthropic", "secret": NEW_SECRET,
         "base_url": "", "tier": ""},
    )
    assert response.status_code == 302, response.content[:2000]
    row = last()
    assert (row.action, row.channel) == ("key.create", "admin")
    assert row.changes["after"]["label"] == "from the admin"
    assert NEW_SECRET not in str(row.changes)
