"""What the audit trail records of a run, and the one wrapper every channel uses for a person's change
to a run: the run's fields before, the operation, the fields after and the audit row, in one
transaction (a refused operation rolls back and records nothing)."""

from collections.abc import Callable
from typing import Any

from django.db import transaction

from apps.audit.services import Actor, record
from apps.core.ids import RunId
from apps.runs.models import Run


def run_fields(run: Run) -> dict[str, Any]:
    """A run as the trail shows it: what a person's operation can change (never its blocks' text)."""
    options = run.options or {}
    return {
        "status": run.status,
        "paused_cause": run.paused_cause,
        "current_pass": run.current_pass,
        "max_cost_usd": options.get("max_cost_usd"),
        "model": run.model,
        "prompt_version": run.prompt_version,
        "retention_days": run.retention_days,
        "deleting_at": run.deleting_at.isoformat() if run.deleting_at else None,
    }


def run_audited(actor: Actor, action: str, run_id: RunId, operation: Callable[[], Run], **extra: Any) -> Run:
    """Run `operation` (a service call on the run) and record `run.<action>` with what changed.
    `extra` goes into the record's "after" (a reseed's scope, a replay's failure ids)."""
    with transaction.atomic():
        before = Run.objects.filter(pk=run_id).first()
        run = operation()
        run.refresh_from_db()
        after = {**run_fields(run), **extra}
        record(
            actor=actor,
            action=f"run.{action}",
            object_type="run",
            object_id=run.pk,
            before=run_fields(before) if before else {},
            after=after,
            team_id=run.team_id,  # the team's admins read it
        )
    return run


def run_created(actor: Actor, run: Run) -> None:
    record(
        actor=actor,
        action="run.create",
        object_type="run",
        object_id=run.pk,
        after={
            **run_fields(run),
            "name": run.name,
            "total_blocks": run.total_blocks,
            "key_id": run.key_id,
            "mode": run.mode,
        },
        team_id=run.team_id,
    )
