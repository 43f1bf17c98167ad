"""Thin Celery adapters for the dead-letter table."""

from celery import shared_task

from apps.runs.services.replay import failures_replay_sweep


# Beat runs this every REPLAY_INTERVAL_SECONDS with `expires` shorter than that; one sweep handles
# at most REPLAY_BATCH short transactions, well within these limits. Two sweeps overlapping are safe.
@shared_task(name="conveyor.failures.replay_due", time_limit=120, soft_time_limit=100)
def replay_due_failures() -> dict:
    """Put dead-lettered blocks whose next_retry_at has come back to work."""
    return {"replayed": failures_replay_sweep()}
