"""Deleting a user: refused while their runs may still work; otherwise their keys, runs (everything of
them), pipelines and webhook secret go in the background, another user's nothing, and their audit
records stay."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.accounts.deletion import user_delete, user_rows_delete
from apps.audit.models import AuditRecord
from apps.audit.services import Actor, record
from apps.keys.models import ProviderKey
from apps.runs.models import Run
from apps.webhooks.models import WebhookSecret
from apps.webhooks.services import webhook_secret_rotate
from tests.factories import make_key, make_run
from tests.storage_helpers import ended_run, rows_of

pytestmark = pytest.mark.django_db

ADMIN = Actor(user_id=None, name="root", channel="command")


def test_deleting_a_user_removes_what_they_own_and_keeps_their_audit_records(owner, outsider, offline_key):
    runs = [ended_run(owner, offline_key, 3), ended_run(owner, offline_key, 2)]
    webhook_secret_rotate(owner=owner)
    record(
        actor=Actor(user_id=owner.pk, name="owner", channel="api"),
        action="run.cancel",
        object_type="run",
        object_id=runs[0].pk,
    )
    theirs = ended_run(outsider, make_key(outsider), 2)
    before_theirs = rows_of(theirs.pk)

    user_delete(user_id=owner.pk, actor=ADMIN)
    owner.refresh_from_db()
    assert not owner.is_active
    assert not Run.objects.filter(owner=owner, deleting_at__isnull=True).exists()
    user_rows_delete(user_id=owner.pk)

    assert not get_user_model().objects.filter(pk=owner.pk).exists()
    assert not ProviderKey.objects.filter(pk=offline_key.pk).exists()
    assert not WebhookSecret.objects.filter(owner_id=owner.pk).exists()
    for run in runs:
        assert set(rows_of(run.pk).values()) == {0}
    assert rows_of(theirs.pk) == before_theirs
    assert list(AuditRecord.objects.filter(actor_id=owner.pk).values_list("action", flat=True)) == [
        "run.cancel"
    ]
    assert AuditRecord.objects.filter(action="user.delete", object_id=str(owner.pk)).exists()


def test_a_user_with_a_working_run_is_refused_and_nothing_changes(owner, offline_key):
    run = make_run(owner, offline_key, ["still to do"])
    with pytest.raises(CommandError, match="cancel them first"):
        call_command("delete_user", "owner")
    owner.refresh_from_db()
    assert owner.is_active and Run.objects.get(pk=run.pk).deleting_at is None
    assert not AuditRecord.objects.exists()


def test_the_command_deletes_a_user_and_records_who_asked(owner, staff, offline_key):
    ended_run(owner, offline_key, 2)
    call_command("delete_user", "owner", "--as", "staff")
    row = AuditRecord.objects.get(action="user.delete")
    assert (row.channel, row.actor_name, row.object_id) == ("command", "staff", str(owner.pk))
    assert row.changes["after"]["runs_deleted"] == 1
    user_rows_delete(user_id=owner.pk)
    assert not get_user_model().objects.filter(pk=owner.pk).exists()
