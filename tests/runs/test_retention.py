"""Retention: once a run's retention has passed, the sweep empties its text and keeps its accounting
(counts, tokens, cost, timings, hashes); compare still says "same answer"; nothing runs it again."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.failures.models import DiagnosticLog, PipelineFailure
from apps.runs.models import Attempt, Block, Run
from apps.runs.reporting.compare import outputs_parity
from apps.runs.services.lifecycle import RunStateError
from apps.runs.services.reseed import run_reseed
from apps.runs.services.retention import run_purge, runs_due_for_purge, runs_retention_sweep
from apps.runs.transitions import output_sha256
from tests.storage_helpers import ended_run

pytestmark = pytest.mark.django_db


def later(days: float) -> timezone.datetime:
    return timezone.now() + timedelta(days=days)


def accounting(run: Run) -> tuple:
    run.refresh_from_db()
    blocks = list(
        Block.objects.filter(run=run)
        .order_by("block_index")
        .values_list(
            "status",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "latency_ms",
            "output_sha256",
            "finished_at",
        )
    )
    attempts = list(
        Attempt.objects.filter(run=run)
        .order_by("pk")
        .values_list("outcome", "input_tokens", "output_tokens", "cost_usd", "latency_ms")
    )
    return (
        run.completed_blocks,
        run.failed_blocks,
        run.input_tokens,
        run.output_tokens,
        run.cost_usd,
        run.finished_at,
        blocks,
        attempts,
    )


def test_the_purge_empties_the_text_and_keeps_the_accounting(owner, offline_key):
    run = ended_run(owner, offline_key, 5, retention_days=3)
    kept = accounting(run)
    assert run.cost_usd == Decimal("0.005") and kept[6][1][5] == output_sha256("output of b1")

    assert runs_due_for_purge(now=later(2.9)) == []
    assert runs_retention_sweep(now=later(3.1))["purged"] == 1

    assert accounting(run) == kept
    assert run.purged_at is not None
    blocks = Block.objects.filter(run=run)
    assert set(blocks.values_list("input", "output", "output_json", "metadata")) == {("", None, None, None)}
    assert not Attempt.objects.filter(run=run, output__isnull=False).exists()
    failure = PipelineFailure.objects.get(run=run)
    assert (failure.payload_snapshot, failure.context, failure.error_code) == ({}, {}, "api_error")
    assert [m for m in DiagnosticLog.objects.filter(run=run).values_list("metadata", flat=True) if m] == []
    assert run_purge(run_id=run.pk, now=later(4)) == {"purged": False}  # once


def test_a_run_without_a_retention_uses_the_setting_and_none_keeps_it(owner, offline_key, settings):
    run = ended_run(owner, offline_key, 2)
    assert runs_due_for_purge(now=later(1000)) == []
    settings.CONVEYOR = {**settings.CONVEYOR, "RUN_RETENTION_DAYS": 7}
    assert runs_due_for_purge(now=later(6)) == []
    assert runs_due_for_purge(now=later(8)) == [str(run.pk)]


def test_other_runs_are_not_purged(owner, offline_key):
    purged = ended_run(owner, offline_key, 2, retention_days=1)
    other = ended_run(owner, offline_key, 2, retention_days=30)
    runs_retention_sweep(now=later(2))
    assert Block.objects.filter(run=purged, input="").count() == 2
    assert Block.objects.filter(run=other, input="").count() == 0
    assert Block.objects.filter(run=other, output__isnull=False).count() == 1


def test_compare_still_says_same_answer_after_a_purge(owner, offline_key):
    a = ended_run(owner, offline_key, 4, retention_days=1)
    b = ended_run(owner, offline_key, 4)
    Block.objects.filter(run=b, uid="b3").update(
        output="another answer", output_sha256=output_sha256("another answer")
    )
    runs_retention_sweep(now=later(2))
    parity = outputs_parity(a, b)
    assert (parity.compared, parity.exact_matches, parity.mismatches.uids) == (3, 2, ["b3"])


def test_a_run_past_its_retention_cannot_be_reseeded(owner, offline_key):
    run = ended_run(owner, offline_key, 2, retention_days=0)
    with pytest.raises(RunStateError, match="retention has passed"):
        run_reseed(run_id=run.pk, scope="all")


@pytest.mark.parametrize("value", [-1, "ten", 1.5])
def test_a_bad_retention_is_a_400_naming_the_field_and_nothing_is_created(owner, offline_key, value):
    client = APIClient()
    client.force_authenticate(owner)
    response = client.post(
        reverse("run-list"),
        {
            "key": offline_key.pk,
            "model": "claude-haiku-4-5",
            "blocks": [{"input": "x"}],
            "retention_days": value,
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "retention_days" in response.json()["error"]["fields"]
    assert not Run.objects.exists()


def test_the_api_takes_a_retention(owner, offline_key):
    client = APIClient()
    client.force_authenticate(owner)
    response = client.post(
        reverse("run-list"),
        {
            "key": offline_key.pk,
            "model": "claude-haiku-4-5",
            "blocks": [{"input": "x"}],
            "retention_days": 14,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert Run.objects.get().retention_days == 14
