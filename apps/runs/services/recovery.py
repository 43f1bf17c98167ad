"""The pump's recovery work: blocks whose worker vanished, runs that should have ended, and runs with
due work and no worker on them. A stuck-work monitor, never the normal completion path."""

import functools
import logging
from collections import Counter
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from apps.core.ids import RunId
from apps.counters.recording import metrics_flush, record_block_finished
from apps.failures.models import EventCode
from apps.failures.services import failure_record
from apps.runs.dispatch import serve_dispatch_rollback_unsafe
from apps.runs.models import Attempt, AttemptOutcome, Block, BlockStatus, Run, RunMode
from apps.runs.services.finalize import run_finalize
from apps.runs.services.team_budget import runs_resume_for_team_budget
from apps.runs.transitions import BLOCK_COUNTER, LEASE_EXPIRED, RUN_ACTIVE, RunStatus, lock_run

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


@transaction.atomic
def _expire_run_leases(run_id: RunId, now: datetime) -> int:
    """One run's expired claims taken back (transitions: `expire_leases`), and in the same
    transaction what that leaves behind: an Attempt per claim (the call may have happened), a
    dead-letter row per block out of attempts, the run's counts and reservation, its end."""
    run = lock_run(run_id)
    expired = Block.objects.expire_leases(run=run, now=now)
    Attempt.objects.bulk_create(
        Attempt(run_id=run.pk, block_id=claim.block_id, number=claim.pass_attempts,
                pass_number=run.current_pass, outcome=AttemptOutcome.LEASE_EXPIRED, accepted=True,
                error_code=LEASE_EXPIRED, error_message=claim.lost_on, worker=claim.worker,
                model=run.model)
        for claim in expired
    )
    for claim in expired:
        if claim.status == BlockStatus.FAILED:
            failure_record(
                run_id=run.pk, block_id=claim.block_id, failing_function="conveyor.runs.pump",
                caller_function="conveyor.runs.services.recovery.leases_expire",
                error_code=LEASE_EXPIRED, error_message=claim.lost_on, http_status=None,
                attempt_count=claim.attempts, payload_snapshot={"uid": claim.uid},
                context={"uid": claim.uid, "block_index": claim.block_index, "worker": claim.worker},
                event_code=EventCode.DOWNSTREAM_CALL_FAILED,
            )
    ended = Counter(claim.status for claim in expired if claim.status in BLOCK_COUNTER)
    for status, n in ended.items():
        code = LEASE_EXPIRED if status == BlockStatus.FAILED else ""
        transaction.on_commit(functools.partial(record_block_finished, status=status, error_code=code, n=n))
    counters = {BLOCK_COUNTER[status]: F(BLOCK_COUNTER[status]) + n for status, n in ended.items()}
    released = sum((claim.reserved_usd for claim in expired), Decimal(0))
    if released:
        counters["reserved_usd"] = F("reserved_usd") - released
    if counters:
        Run.objects.filter(pk=run.pk).update(**counters)
    run_finalize(run_id=run.pk)
    if expired:
        logger.warning("run %s: %d expired lease(s) recovered", run.pk, len(expired))
    return len(expired)


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
    resumed = runs_resume_for_team_budget()
    dispatched = int(any_run_has_due_work() and serve_dispatch_rollback_unsafe(reason="pump"))
    metrics_flush()  # the blocks that expired leases ended
    if expired or ended or dispatched or resumed:
        logger.info("pump: %d expired lease(s), %d run(s) ended, %d run(s) resumed by their team's limit, "
                    "%d serving loop(s) woken", expired, ended, resumed, dispatched)
    return {"expired_leases": expired, "ended_runs": ended, "dispatched": dispatched,
            "team_budget_resumed": resumed}
