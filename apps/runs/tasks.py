"""Thin Celery adapters: ids in, a service call, nothing else. Every task is safe to run twice."""

import asyncio
import logging

from celery import shared_task
from django.conf import settings

from apps.health.heartbeats import PUMP, heartbeat_record
from apps.runs.batching.poll import batches_poll
from apps.runs.batching.submit import batches_submit
from apps.runs.dispatch import (
    BATCHES_TASK,
    SERVE_TASK,
    serve_hand_on_rollback_unsafe,
    serve_marker_clear,
    server_register,
    server_unregister,
    worker_name,
)
from apps.runs.hosts import host_help_arrived, host_of
from apps.runs.services.deletion import DELETE_RUN_TASK, run_rows_delete
from apps.runs.services.recovery import pump as pump_service
from apps.runs.services.replay import failures_replay_sweep
from apps.runs.services.retention import runs_retention_sweep
from apps.runs.services.team_budget import spend_alerts_check
from apps.runs.serving.loop import ServingLoop

logger = logging.getLogger(__name__)


def _serve_time_limit() -> float:
    conf = settings.CONVEYOR
    return conf["SERVE_SLICE_SECONDS"] + conf["PROVIDER_TIMEOUT_SECONDS"] + 60


# Celery takes time limits in float seconds; celery-types says int.
@shared_task(name=SERVE_TASK, acks_late=True,  # type: ignore[call-overload]
             time_limit=_serve_time_limit() + 30, soft_time_limit=_serve_time_limit())
def serve(host: str | None = None, hops: int = 0) -> dict:
    """Serve every active run from this process for one slice, then hand over to a new serve task
    if work is left. A host keeps a process free for control tasks: a serve task that finds its
    host's serving places taken hands itself on to a host with a free place, or ends.
    `host`: the host it was sent to (help expected there); `hops`: how often it was handed on."""
    serve_marker_clear()
    worker = worker_name()
    if not server_register(worker=worker, ttl_seconds=settings.CONVEYOR["SERVE_REFRESH_SECONDS"] * 12):
        handed_on = serve_hand_on_rollback_unsafe(worker=worker, hops=hops)
        return {"served": False, "reason": "this host's serving places are taken",
                "handed_on_to": handed_on}
    if host == host_of(worker):
        host_help_arrived(host=host)
    try:
        report = asyncio.run(ServingLoop(worker=worker).run())
    finally:
        server_unregister(worker=worker)
    return {"served": True, **report.as_dict()}


@shared_task(name=BATCHES_TASK, time_limit=3600, soft_time_limit=3500)
def batches() -> dict:
    """Beat, every BATCH_POLL_SECONDS (and at once after a batch-mode run is submitted or canceled):
    look at open batches and record the results of ended ones, then submit due blocks of batch-mode
    runs. Two at once are safe: one batch per claim, results fenced by its token."""
    polled = batches_poll()
    return {**polled, "submitted": batches_submit()}


@shared_task(name="conveyor.runs.pump", time_limit=120, soft_time_limit=100)
def pump() -> dict:
    """Beat, every few seconds: recover expired leases, end finished runs, make sure a serving loop
    is alive while any run has due work. Its heartbeat says beat is ticking (readiness, metrics)."""
    summary = pump_service()
    heartbeat_record(PUMP, summary)
    return summary


# Beat runs this every REPLAY_INTERVAL_SECONDS with `expires` shorter than that; one sweep handles
# at most REPLAY_BATCH short transactions, well within these limits. Two sweeps overlapping are safe.
# Its name is the failures app's (the dead-letter table), its work the engine's (a block reopened).
@shared_task(name="conveyor.failures.replay_due", time_limit=120, soft_time_limit=100)
def replay_due_failures() -> dict:
    """Put dead-lettered blocks whose next_retry_at has come back to work."""
    return {"replayed": failures_replay_sweep()}


# Beat runs this every TEAM_SPEND_CHECK_SECONDS; two at once announce each crossing once (a
# conditional write of the limit's alert_level).
@shared_task(name="conveyor.teams.spend_alerts", time_limit=120, soft_time_limit=100)
def team_spend_alerts() -> dict:
    """Announce the team and member limits whose spend reached 80% or 100% (a webhook event, the
    metric), once per crossing."""
    return {"announced": spend_alerts_check()}


@shared_task(name=DELETE_RUN_TASK, acks_late=True, time_limit=3600, soft_time_limit=3500)
def delete_run(run_id: str) -> dict:
    """Delete a run marked `deleting` and all of it, in short batched transactions. Twice is harmless."""
    return run_rows_delete(run_id=run_id)


@shared_task(name="conveyor.runs.retention", time_limit=3600, soft_time_limit=3500)
def retention() -> dict:
    """Beat, every RETENTION_SWEEP_SECONDS: purge the text of runs whose retention has passed; queue
    again a deletion left half-way by a lost worker."""
    return runs_retention_sweep()
