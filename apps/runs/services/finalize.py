"""Ending a run's pass exactly once: one conditional UPDATE decides, whoever races to it.

A run ends once per pass (its submission is pass 1; each reseed or replay of an ended run is one
more). When a pass ends, its RunPass row records how it ended (time, status, counts, cost), which no
later pass rewrites; the run's dead-letter rows that were waiting for an automatic replay are parked
(an ended run is replayed only when a person asks: see apps.runs.services.replay); and `run_finished`
is sent once, after commit, with the pass number."""

import logging

from django.db import transaction
from django.utils import timezone

from apps.core.ids import RunId
from apps.failures.models import PipelineFailure
from apps.runs.models import Run, RunPass, RunStatus
from apps.runs.signals import run_finished

logger = logging.getLogger(__name__)

PARKED_AT_END = "the run ended: replay it by hand (a new pass) or reseed its failed blocks"


def run_finalize(*, run_id: RunId) -> str | None:
    """Complete a running run whose blocks are all terminal, or end a canceling run once nothing
    is in flight. Returns the new status if this call ended the run, else None. Safe to call from
    anywhere, any number of times: only the UPDATE that matches a row wins."""
    now = timezone.now()
    runs = Run.objects.filter(pk=run_id)
    ended = None
    if runs.complete_if_done(now=now):
        ended = RunStatus.COMPLETE
    elif runs.cancel_if_drained(now=now):
        ended = RunStatus.CANCELED
    if ended:
        run = runs.values("current_pass", "completed_blocks", "failed_blocks", "canceled_blocks",
                          "cost_usd").get()
        RunPass.objects.filter(run_id=run_id, number=run["current_pass"], finished_at__isnull=True).update(
            finished_at=now, ended_status=ended, completed_blocks=run["completed_blocks"],
            failed_blocks=run["failed_blocks"], canceled_blocks=run["canceled_blocks"],
            cost_usd=run["cost_usd"],
        )
        PipelineFailure.objects.filter(run_id=run_id, resolved_at__isnull=True,
                                       next_retry_at__isnull=False).update(next_retry_at=None,
                                                                           resolution_note=PARKED_AT_END)
        pass_number = run["current_pass"]
        transaction.on_commit(lambda: _announce(run_id, ended, pass_number))
    return ended


def _announce(run_id: RunId, status: str, pass_number: int) -> None:
    logger.info("run %s ended: %s (pass %d)", run_id, status, pass_number)
    run_finished.send(sender=Run, run_id=run_id, status=status, pass_number=pass_number)
