"""Cancelling, pausing and resuming runs: the operations a person (or the engine) asks for."""

from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.core.errors import StateConflict
from apps.runs.dispatch import run_dispatch_on_commit
from apps.runs.models import Block, PausedCause, Run
from apps.runs.services.claiming import lock_run
from apps.runs.services.finalize import run_finalize
from apps.runs.transitions import RUN_CANCELABLE, RunStatus


class RunStateError(StateConflict):
    """The run is not in a state that allows this operation."""


@transaction.atomic
def run_cancel(*, run_id: Any) -> Run:
    """Pending blocks are canceled at once; calls in flight finish and are recorded; the run ends
    `canceled` when the last of them is written (or now, if none is in flight)."""
    run = lock_run(run_id)
    if run.status not in RUN_CANCELABLE:
        raise RunStateError(f"a {run.status} run cannot be canceled")
    canceled = Block.objects.filter(run_id=run.pk).cancel_pending(now=timezone.now())
    runs = Run.objects.filter(pk=run.pk)
    runs.begin_canceling()
    runs.update(canceled_blocks=F("canceled_blocks") + canceled)
    run_finalize(run_id=run.pk)
    run.refresh_from_db()
    return run


def run_pause_for_deleted_key(*, run_id: Any) -> None:
    """The run's key is gone (deleted while the run was queued): nothing can call for it."""
    Run.objects.filter(pk=run_id).pause(cause=PausedCause.KEY_DELETED,
                                        reason="its provider key was deleted")


def runs_pause_for_key(*, key_id: int, cause: str, reason: str) -> int:
    """Every active run on a key that cannot be used (rejected, blocked, unsafe) pauses."""
    return Run.objects.filter(key_id=key_id).pause(cause=cause, reason=reason)


def run_resume(*, run_id: Any) -> Run:
    with transaction.atomic():
        run = lock_run(run_id)
        if run.status != RunStatus.PAUSED:
            raise RunStateError(f"a {run.status} run cannot be resumed")
        Run.objects.filter(pk=run.pk).resume()
        run_dispatch_on_commit(run_id=run.pk)
    run.refresh_from_db()
    return run


def runs_resume_for_key(*, key_id: int) -> int:
    """Once a key validates again, the runs it paused by being rejected, or by a base_url that broke
    the address rules at call time, resume by themselves (validation passed those rules just now)."""
    with transaction.atomic():
        paused = Run.objects.filter(key_id=key_id).paused_by(PausedCause.KEY_REJECTED,
                                                             PausedCause.KEY_UNSAFE)
        ids = list(paused.values_list("pk", flat=True))
        Run.objects.filter(pk__in=ids).resume()
        for run_id in ids:
            run_dispatch_on_commit(run_id=run_id)
    return len(ids)
