"""Ending a run exactly once: one conditional UPDATE decides, whoever races to it."""

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.runs.models import Run, RunStatus
from apps.runs.signals import run_finished

logger = logging.getLogger(__name__)


def run_finalize(*, run_id: Any) -> str | None:
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
        transaction.on_commit(lambda: _announce(run_id, ended))
    return ended


def _announce(run_id: Any, status: str) -> None:
    logger.info("run %s ended: %s", run_id, status)
    run_finished.send(sender=Run, run_id=run_id, status=status)
