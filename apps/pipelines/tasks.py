"""Thin Celery adapters for pipelines. Safe to run twice."""

from celery import shared_task

from apps.pipelines.services.handoff import pipelines_settle_running

SETTLE_TASK = "conveyor.pipelines.settle"


@shared_task(name=SETTLE_TASK, time_limit=120, soft_time_limit=100)
def settle() -> int:
    """Release later steps no item can reach and end pipelines whose steps have all ended (what a
    handoff's after-commit settle would have done, had its process lived)."""
    return pipelines_settle_running()
