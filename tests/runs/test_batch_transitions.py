"""A Message Batch row moves only from the state each move starts from: a move made twice, or raced by
another process, moves nothing the second time."""

import uuid

import pytest
from django.utils import timezone

from apps.runs.models import MessageBatch
from tests.factories import make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch(owner, offline_key) -> MessageBatch:
    run = make_run(owner, offline_key, ["a"])
    return MessageBatch.objects.create(run=run, key=offline_key, lease_token=uuid.uuid4(), requests=1,
                                       blocks=1)


def rows(batch: MessageBatch):
    return MessageBatch.objects.filter(pk=batch.pk)


def test_a_new_batch_row_is_submitting(batch):
    assert batch.status == "submitting"


def test_a_submitted_batch_is_in_progress_with_the_providers_id_once(batch):
    now = timezone.now()
    assert rows(batch).mark_submitted(provider_batch_id="msgbatch_1", now=now, counts={"processing": 1}) == 1
    assert rows(batch).mark_submitted(provider_batch_id="msgbatch_2", now=now) == 0
    batch.refresh_from_db()
    assert (batch.status, batch.provider_batch_id, batch.submitted_at, batch.counts) == (
        "in_progress", "msgbatch_1", now, {"processing": 1})


def test_only_a_batch_still_submitting_can_be_abandoned(batch):
    rows(batch).mark_submitted(provider_batch_id="msgbatch_1", now=timezone.now())
    assert rows(batch).abandon(error="gone") == 0
    batch.refresh_from_db()
    assert (batch.status, batch.error) == ("in_progress", "")


def test_an_abandoned_batch_keeps_why(batch):
    assert rows(batch).abandon(error="x" * 3000) == 1
    batch.refresh_from_db()
    assert (batch.status, len(batch.error)) == ("abandoned", 2000)


def test_a_batch_ends_once_and_is_recorded_once(batch):
    now = timezone.now()
    assert rows(batch).end(ended_at=now, polled_at=now, counts={}) == 0  # not at the provider yet
    rows(batch).mark_submitted(provider_batch_id="msgbatch_1", now=now)
    assert rows(batch).mark_recorded(now=now) == 0  # not ended yet
    assert rows(batch).end(ended_at=now, polled_at=now, counts={"succeeded": 1}) == 1
    assert rows(batch).end(ended_at=now, polled_at=now, counts={}) == 0
    assert rows(batch).mark_recorded(now=now) == 1
    assert rows(batch).mark_recorded(now=now) == 0
    batch.refresh_from_db()
    assert (batch.status, batch.ended_at, batch.recorded_at, batch.counts) == (
        "recorded", now, now, {"succeeded": 1})


def test_beat_looks_at_batches_in_progress_or_ended_and_recovers_those_submitting(batch):
    assert list(MessageBatch.objects.submitting()) == [batch]
    assert list(MessageBatch.objects.open()) == []
    rows(batch).mark_submitted(provider_batch_id="msgbatch_1", now=timezone.now())
    assert (list(MessageBatch.objects.submitting()), list(MessageBatch.objects.open())) == ([], [batch])
