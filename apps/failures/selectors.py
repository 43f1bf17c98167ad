"""Reads of the dead-letter table, shared by the API and the admin. A failure is its run's: whoever
may read (change) the run may read (replay, resolve) it (apps/teams/access.py)."""

from datetime import datetime
from typing import Any

from django.db.models import Count, F, QuerySet

from apps.failures.models import UNRESOLVED, FailureState, PipelineFailure, state_filter
from apps.teams.access import visible_to


def failures_visible_to(*, user: Any, write: bool = False) -> QuerySet[PipelineFailure]:
    """The failures `user` may read (or with `write`, replay and resolve). `user=None` is the
    operator at the command line: every row. A run being deleted is gone at once (its rows go in
    the background), its failures with it."""
    rows = PipelineFailure.objects.filter(run__deleting_at__isnull=True).annotate(block_uid=F("block__uid"))
    return visible_to(user, rows, write=write)


def failures_list(*, user: Any, run: Any = None, error_code: str | None = None,
                  resolved: bool | None = None, state: str | None = None,
                  failing_function: str | None = None,
                  failed_after: datetime | None = None, failed_before: datetime | None = None
                  ) -> QuerySet[PipelineFailure]:
    rows = failures_visible_to(user=user)
    if run is not None:
        rows = rows.filter(run_id=run)
    if error_code:
        rows = rows.filter(error_code=error_code)
    if resolved is not None:
        rows = rows.filter(resolved_at__isnull=not resolved)
    if state:
        rows = rows.filter(state_filter(state))
    if failing_function:
        rows = rows.filter(failing_function=failing_function)
    if failed_after is not None:
        rows = rows.filter(failed_at__gte=failed_after)
    if failed_before is not None:
        rows = rows.filter(failed_at__lt=failed_before)
    return rows.order_by("-failed_at", "-pk")


def failures_unresolved_counts() -> dict[str, int]:
    """Unresolved rows, and how many of them are parked (replayed only by hand)."""
    return PipelineFailure.objects.filter(state_filter(UNRESOLVED)).aggregate(
        unresolved=Count("pk"), parked=Count("pk", filter=state_filter(FailureState.PARKED))
    )
