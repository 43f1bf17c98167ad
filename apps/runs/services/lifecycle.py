"""Run lifecycle beyond claiming and writing: dispatch, cancellation, pausing and resuming, and the
pump's recovery work (expired leases, runs that should have ended, due work with no drain)."""

import contextlib
import logging
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.failures.models import EventCode
from apps.failures.services import failure_record
from apps.runs.models import Attempt, AttemptOutcome, Block, BlockStatus, Run, RunStatus
from apps.runs.services.claiming import lock_run
from apps.runs.services.finalize import run_finalize
from apps.runs.services.outcomes import KEY_PAUSE_PREFIX

logger = logging.getLogger(__name__)

PAUSABLE = (RunStatus.QUEUED, RunStatus.RUNNING)
CANCELABLE = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED)


class RunStateError(ValueError):
    """The run is not in a state that allows this operation."""


# --- dispatch ------------------------------------------------------------------------------------

@cache
def _redis_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def _redis() -> redis.Redis:
    return _redis_for(settings.CELERY_BROKER_URL)


def run_dispatch(*, run_id: Any) -> bool:
    """Wake a worker for this run unless a wake-up is already queued.

    The marker only saves redundant messages: if it or the message is lost (Redis flushed), the
    pump dispatches again, and a duplicate drain is harmless because claims are atomic."""
    from apps.runs.tasks import drain

    conf = settings.CONVEYOR
    if not drain.app.conf.task_always_eager:
        ttl = int(max(conf["DRAIN_SLICE_SECONDS"], conf["PUMP_INTERVAL_SECONDS"] * 4))
        try:
            if not _redis().set(f"conveyor:drain-queued:{run_id}", "1", nx=True, ex=ttl):
                return False
        except redis.RedisError:
            logger.warning("redis unavailable; dispatching drain for run %s without marker", run_id)
    drain.delay(str(run_id))
    return True


def run_dispatch_started(*, run_id: Any) -> None:
    """A drain took the wake-up: the next one may be queued."""
    with contextlib.suppress(redis.RedisError):
        _redis().delete(f"conveyor:drain-queued:{run_id}")


# --- cancel, pause, resume -------------------------------------------------------------------------

@transaction.atomic
def run_cancel(*, run_id: Any) -> Run:
    """Pending blocks are canceled at once; calls in flight finish and are recorded; the run ends
    `canceled` when the last of them is written (or now, if none is in flight)."""
    run = lock_run(run_id)
    if run.status not in CANCELABLE:
        raise RunStateError(f"a {run.status} run cannot be canceled")
    now = timezone.now()
    canceled = Block.objects.filter(run_id=run.pk, status=BlockStatus.PENDING).update(
        status=BlockStatus.CANCELED, finished_at=now, next_attempt_at=None
    )
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.CANCELING, canceled_blocks=F("canceled_blocks") + canceled
    )
    run_finalize(run_id=run.pk)
    run.refresh_from_db()
    return run


def runs_pause_for_key_loss(*, run_id: Any) -> None:
    Run.objects.filter(pk=run_id, status__in=PAUSABLE).update(
        status=RunStatus.PAUSED, paused_reason="its provider key was deleted"
    )


def runs_pause_for_key(*, key_id: int, reason: str) -> int:
    return Run.objects.filter(key_id=key_id, status__in=PAUSABLE).update(
        status=RunStatus.PAUSED, paused_reason=reason[:1000]
    )


def run_resume(*, run_id: Any) -> Run:
    with transaction.atomic():
        run = lock_run(run_id)
        if run.status != RunStatus.PAUSED:
            raise RunStateError(f"a {run.status} run cannot be resumed")
        Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, paused_reason="")
        transaction.on_commit(lambda: run_dispatch(run_id=run.pk))
    run.refresh_from_db()
    return run


def runs_resume_for_key(*, key_id: int) -> int:
    """Once a key validates again, the runs it paused resume by themselves."""
    with transaction.atomic():
        ids = list(
            Run.objects.filter(key_id=key_id, status=RunStatus.PAUSED,
                               paused_reason__startswith=KEY_PAUSE_PREFIX)
            .values_list("pk", flat=True)
        )
        Run.objects.filter(pk__in=ids, status=RunStatus.PAUSED).update(
            status=RunStatus.RUNNING, paused_reason=""
        )
        for run_id in ids:
            transaction.on_commit(lambda run_id=run_id: run_dispatch(run_id=run_id))
    return len(ids)


# --- the pump's recovery work ---------------------------------------------------------------------

def leases_expire() -> int:
    """Blocks whose worker vanished (killed, lost) go back to pending; the attempt counts, so a
    block that kills its workers ends failed rather than looping."""
    now = timezone.now()
    run_ids = set(
        Block.objects.filter(status=BlockStatus.CLAIMED, lease_expires_at__lt=now)
        .values_list("run_id", flat=True)
        .distinct()
    )
    expired = 0
    for run_id in run_ids:
        expired += _expire_run_leases(run_id, now)
    return expired


@transaction.atomic
def _expire_run_leases(run_id: Any, now: Any) -> int:
    run = lock_run(run_id)
    blocks = list(
        Block.objects.filter(run_id=run.pk, status=BlockStatus.CLAIMED, lease_expires_at__lt=now)
        .select_for_update(skip_locked=True)
    )
    failed = canceled = 0
    for block in blocks:
        if run.status in (RunStatus.CANCELING, RunStatus.CANCELED):
            status, code = BlockStatus.CANCELED, ""
            canceled += 1
        elif block.attempts >= run.max_attempts:
            status, code = BlockStatus.FAILED, "lease_expired"
            failed += 1
        else:
            status, code = BlockStatus.PENDING, ""
        message = f"lease expired on {block.claimed_by or 'an unknown worker'}" if code else ""
        Block.objects.filter(pk=block.pk, lease_token=block.lease_token).update(
            status=status, lease_token=None, lease_expires_at=None, next_attempt_at=now,
            error_code=code or "lease_expired", error_message=message or "lease expired; retried",
            finished_at=now if status != BlockStatus.PENDING else None,
        )
        Attempt.objects.create(
            run_id=run.pk, block_id=block.pk, number=block.attempts, pass_number=run.current_pass,
            outcome=AttemptOutcome.LEASE_EXPIRED, accepted=True, error_code="lease_expired",
            error_message=f"lease expired on {block.claimed_by}", worker=block.claimed_by,
            model=run.model,
        )
        if status == BlockStatus.FAILED:
            failure_record(
                run_id=run.pk, block_id=block.pk, failing_function="conveyor.runs.pump",
                caller_function="conveyor.runs.services.lifecycle.leases_expire",
                error_code=code, error_message=message, http_status=None,
                attempt_count=block.attempts, payload_snapshot={"uid": block.uid},
                context={"uid": block.uid, "block_index": block.block_index,
                         "worker": block.claimed_by},
                event_code=EventCode.DOWNSTREAM_CALL_FAILED,
            )
    Run.objects.filter(pk=run.pk).update(
        failed_blocks=F("failed_blocks") + failed, canceled_blocks=F("canceled_blocks") + canceled
    )
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


def runs_with_due_work() -> list[Any]:
    """Active runs, not throttled, with due pending blocks and room under their parallelism.
    EXISTS and a count of claimed blocks only: a tick never walks a run's finished blocks."""
    now = timezone.now()
    in_flight = (
        Block.objects.filter(run=OuterRef("pk"), status=BlockStatus.CLAIMED)
        .order_by().values("run").annotate(n=Count("id")).values("n")
    )
    rows = (
        Run.objects.filter(status__in=PAUSABLE)
        .filter(Q(key__throttled_until__isnull=True) | Q(key__throttled_until__lte=now))
        .filter(Exists(Block.objects.due(now).filter(run=OuterRef("pk"))))
        .annotate(in_flight=Coalesce(Subquery(in_flight), 0))
        .filter(in_flight__lt=F("parallelism"))
        .values_list("pk", flat=True)
    )
    return list(rows)


def pump() -> dict[str, int]:
    """One tick of the scheduled pump. Everything it does is also safe to do twice."""
    expired = leases_expire()
    ended = runs_finalize_stragglers()
    dispatched = sum(run_dispatch(run_id=run_id) for run_id in runs_with_due_work())
    return {"expired_leases": expired, "ended_runs": ended, "dispatched": dispatched}
