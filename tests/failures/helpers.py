"""Putting blocks into the states replay and reseed work on, through the engine's own services (claim,
record an outcome) but without a provider: fast, and exact about the moment each thing happens."""

from datetime import timedelta
from typing import Any

from django.utils import timezone

from apps.failures.models import PipelineFailure
from apps.providers.errors import FailureKind, ProviderFailure
from apps.runs.models import Block, Run
from apps.runs.services import blocks_claim, outcomes_record
from apps.runs.services.decisions import Outcome
from tests.factories import make_run


def settle(run: Run, *, fail: set[str] = frozenset(), code: str = "api_error",
           kind: FailureKind = FailureKind.RETRYABLE) -> Run:
    """Claim every due block of the run once and record its outcome: blocks whose uid is in `fail`
    fail with `code` (for good when the run has max_attempts=1), the others succeed."""
    claim = blocks_claim(run_id=run.pk, limit=10_000, worker="test")
    outcomes = [
        Outcome(block_id=b.id, lease_token=claim.lease_token, attempt=b.attempt,
                failure=ProviderFailure(kind, code, "the provider broke", http_status=500))
        if b.uid in fail else
        Outcome(block_id=b.id, lease_token=claim.lease_token, attempt=b.attempt,
                output=f"output of {b.uid}")
        for b in claim.blocks
    ]
    if outcomes:
        outcomes_record(run_id=run.pk, outcomes=outcomes, worker="test")
    run.refresh_from_db()
    return run


def failure_of(run: Run, uid: str) -> PipelineFailure:
    return PipelineFailure.objects.get(block__run=run, block__uid=uid, resolved_at__isnull=True)


def counts(run: Run) -> tuple[Any, ...]:
    run.refresh_from_db()
    return run.status, run.completed_blocks, run.failed_blocks, run.canceled_blocks


def active_run(owner: Any, key: Any, inputs: list[str], **options: Any) -> Run:
    """A run that stays at work however its other blocks end: one more block waits for a retry a
    month ahead (an ended run's dead-letter rows are parked, an active run's are scheduled)."""
    run = make_run(owner, key, [*inputs, "still waiting"], **options)
    Block.objects.filter(run=run, block_index=len(inputs)).update(
        next_attempt_at=timezone.now() + timedelta(days=30))
    return run
