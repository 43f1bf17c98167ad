"""Thin Celery adapters: ids in, a service call, nothing else. Every task is safe to run twice."""

import asyncio
import logging

from celery import shared_task
from django.conf import settings

from apps.runs.dispatch import run_dispatch_marker_clear, run_dispatch_rollback_unsafe
from apps.runs.services import pump as pump_service
from apps.runs.services.drain import drain_run

logger = logging.getLogger(__name__)


def _drain_time_limit() -> float:
    conf = settings.CONVEYOR
    return conf["DRAIN_SLICE_SECONDS"] + conf["PROVIDER_TIMEOUT_SECONDS"] + 60


@shared_task(name="conveyor.runs.drain", acks_late=True, time_limit=_drain_time_limit() + 30,
             soft_time_limit=_drain_time_limit())
def drain(run_id: str) -> dict:
    """Claim and call a run's blocks for one time slice, then hand the run back to the queue."""
    run_dispatch_marker_clear(run_id=run_id)
    result = asyncio.run(
        drain_run(run_id, slice_seconds=settings.CONVEYOR["DRAIN_SLICE_SECONDS"])
    )
    if result.sliced:
        run_dispatch_rollback_unsafe(run_id=run_id)  # no transaction is open here
    return {"written": result.written, "calls": result.calls, "splits": result.splits}


@shared_task(name="conveyor.runs.pump", time_limit=120, soft_time_limit=100)
def pump() -> dict:
    """Beat, every few seconds: recover expired leases, end finished runs, wake runs with due work."""
    return pump_service()
