"""The pump's recovery work: blocks whose worker vanished, runs that should have ended, and runs with
due work and no worker on them. A stuck-work monitor, never the normal completion path."""

import functools
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from apps.failures.models import EventCode
from apps.failures.services import failure_record
from apps.metrics.recording import metrics_flush, record_block_finished
from apps.runs.dispatch import serve_dispatch_rollback_unsafe
from apps.runs.models import Attempt, AttemptOutcome, Block, BlockStatus, Run, RunMode
from apps.runs.services.claiming import lock_run
from apps.runs.services.finalize import run_finalize
from apps.runs.transitions import BLOCK_COUNTER, RUN_ACTIVE, RUN_ENDING, RunStatus

logger = logging.getLogger(__name__)


def leases_expire() -> int:
    """Blocks whose worker vanished (killed, lost) go back to pending; the attempt counts, so a
    block that kills its workers ends failed rather than looping."""
    now = timezone.now()
    run_ids = set(
        Block.objects.filter(status=BlockStatus.CLAIMED, lease_expires_at__lt=now)
        .values_list("run_id", flat=True)
        .distinct()
    )
    return sum(_expire_run_leases(run_id, now) for run_id in run_ids)


def _expired_state(run: Run, block: Block) -> tuple[str, str]:
    """Where an expired block goes, and the error code it carries there."""
    if run.status in RUN_ENDING:
        return BlockStatus.CANCELED, ""
    if block.attempts >= run.max_attempts:
        return BlockStatus.FAILED, "lease_expired"
    return BlockStatus.PENDING, ""


@transaction.atomic
def _expire_run_leases(run_id: Any, now: datetime) -> int:
    run = lock_run(run_id)
    blocks = list(
        Block.objects.filter(run_id=run.pk, status=BlockStatus.CLAIMED, lease_expires_at__lt=now)
        .select_for_update(skip_locked=True)
    )
    ended = dict.fromkeys(BLOCK_COUNTER, 0)
    released = sum((block.reserved_usd for block in blocks), Decimal(0))
    for block in blocks:
        status, code = _expired_state(run, block)
        worker = block.claimed_by or "an unknown worker"
        message = f"lease expired on {worker}"
        Block.objects.filter(pk=block.pk, lease_token=block.lease_token).update(
            status=status, lease_token=None, lease_expires_at=None, next_attempt_at=now,
            error_code=code or "lease_expired", error_message=message if code else "lease expired; retried",
            finished_at=now if status != BlockStatus.PENDING else None, reserved_usd=0,
        )
        if status in ended:
            ended[status] += 1
        Attempt.objects.create(
            run_id=run.pk, block_id=block.pk, number=block.pass_attempts, pass_number=run.current_pass,
            outcome=AttemptOutcome.LEASE_EXPIRED, accepted=True, error_code="lease_expired",
            error_message=message, worker=block.claimed_by, model=run.model,
        )
        if status == BlockStatus.FAILED:
            failure_record(
                run_id=run.pk, block_id=block.pk, failing_function="conveyor.runs.pump",
                caller_function="conveyor.runs.services.recovery.leases_expire",
                error_code=code, error_message=message, http_status=None,
                attempt_count=block.attempts, payload_snapshot={"uid": block.uid},
                context={"uid": block.uid, "block_index": block.block_index,
                         "worker": block.claimed_by},
                event_code=EventCode.DOWNSTREAM_CALL_FAILED,
            )
    for status, n in ended.items():
        if n:
            code = "lease_expired" if status == BlockStatus.FAILED else ""
            transaction.on_commit(functools.partial(record_block_finished, status=status,
                                                    error_code=code, n=n))
    counters = {BLOCK_COUNTER[status]: F(BLOCK_COUNTER[status]) + n for status, n in ended.items() if n}
    if released:
        counters["reserved_usd"] = F("reserved_usd") - released
    if counters:
        Run.objects.filter(pk=run.pk).update(**counters)
    run_finalize(run_id=run.pk)
    if blocks:
        logger.warning("run %s: %d expired lease(s) recovered", run.pk, len(blocks))
    return len(blocks)


def runs_finalize_stragglers() -> int:
    """Recovery only: end runs whose last write could not (e.g. a crash between commit and the
    finalising check). The normal path ends a run in the transaction of its last result."""
    ended = 0
    for run_id in Run.objects.filter(
        status__in=[RunStatus.RUNNING, RunStatus.CANCELING]
    ).values_list("pk", flat=True):
        with transaction.atomic():
            ended += bool(run_finalize(run_id=run_id))
    return ended


def any_run_has_due_work() -> bool:
    """A live run with due blocks (batch-mode runs are beat's `batches` task's)."""
    return Run.objects.filter(status__in=RUN_ACTIVE, effective_mode=RunMode.LIVE).filter(
        Exists(Block.objects.due(timezone.now()).filter(run=OuterRef("pk")))
    ).exists()


def pump() -> dict[str, int]:
    """One tick of the scheduled pump. Everything it does is also safe to do twice. It runs outside
    any transaction, so it dispatches at once. Serving loops do the same recovery on their own
    schedule, so it goes on while every worker process is busy serving."""
    expired = leases_expire()
    ended = runs_finalize_stragglers()
    dispatched = int(any_run_has_due_work() and serve_dispatch_rollback_unsafe(reason="pump"))
    metrics_flush()  # the blocks that expired leases ended
    if expired or ended or dispatched:
        logger.info("pump: %d expired lease(s), %d run(s) ended, %d serving loop(s) woken",
                    expired, ended, dispatched)
    return {"expired_leases": expired, "ended_runs": ended, "dispatched": dispatched}
