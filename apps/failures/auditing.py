"""What the audit trail records of a dead-letter row, and the wrapper every channel uses for a
person's change to one (resolve, replay): before, the operation, after and the audit row in one
transaction. Never the payload snapshot (it holds the block's text)."""

from collections.abc import Callable
from typing import Any

from django.db import transaction

from apps.audit.services import Actor, record
from apps.failures.models import PipelineFailure, failure_state


def failure_fields(row: PipelineFailure) -> dict[str, Any]:
    return {
        "state": failure_state(row),
        "run_id": str(row.run_id) if row.run_id else None,
        "block_id": row.block_id,
        "error_code": row.error_code,
        "replay_count": row.replay_count,
        "resolution_note": row.resolution_note,
    }


def _team_of(row: PipelineFailure | None) -> int | None:
    """The team of the failure's run (its admins read the row), if any."""
    if row is None or row.run_id is None:
        return None
    return PipelineFailure.objects.filter(pk=row.pk).values_list("run__team_id", flat=True).first()


def failure_audited(actor: Actor, action: str, failure_id: int, operation: Callable[[], Any]) -> Any:
    with transaction.atomic():
        before = PipelineFailure.objects.filter(pk=failure_id).first()
        result = operation()
        after = PipelineFailure.objects.filter(pk=failure_id).first()
        record(
            actor=actor,
            action=f"failure.{action}",
            object_type="failure",
            object_id=failure_id,
            before=failure_fields(before) if before else {},
            after=failure_fields(after) if after else {},
            team_id=_team_of(before or after),
        )
    return result


def failures_bulk_recorded(actor: Actor, action: str, *, done: list[int], refused: dict[Any, str]) -> None:
    """One row for a bulk operation: which rows it took and which it refused."""
    record(
        actor=actor,
        action=f"failure.{action}",
        object_type="failure",
        object_id="bulk",
        after={"failure_ids": done, "refused": {str(k): v for k, v in refused.items()}},
    )
