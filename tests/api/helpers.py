"""Putting runs and blocks into the states the engine would leave them in, without running it."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from apps.runs.models import Attempt, AttemptOutcome, Block, BlockStatus, Run, RunStatus

COUNTER = {
    BlockStatus.SUCCEEDED: "completed_blocks",
    BlockStatus.FAILED: "failed_blocks",
    BlockStatus.CANCELED: "canceled_blocks",
}


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def finish_block(run: Run, uid: str, status: str, *, output: str | None = None, error_code: str = "",
                 error_message: str = "", cost: str = "0") -> Block:
    """A block ends as the engine would end it: its row, its run's counter and usage move together."""
    block = Block.objects.get(run=run, uid=uid)
    now = timezone.now()
    Block.objects.filter(pk=block.pk).update(
        status=status, output=output, error_code=error_code, error_message=error_message,
        attempts=1, finished_at=now, input_tokens=10, output_tokens=5, cost_usd=Decimal(cost),
    )
    run.refresh_from_db()
    setattr(run, COUNTER[status], getattr(run, COUNTER[status]) + 1)
    run.input_tokens += 10
    run.output_tokens += 5
    run.cost_usd += Decimal(cost)
    run.save()
    block.refresh_from_db()
    return block


def record_attempt(block: Block, *, number: int = 1, outcome: str = AttemptOutcome.SUCCEEDED,
                   **fields: Any) -> Attempt:
    return Attempt.objects.create(run_id=block.run_id, block=block, number=number, outcome=outcome,
                                  model=block.model, **fields)


def set_status(run: Run, status: str, **fields: Any) -> Run:
    Run.objects.filter(pk=run.pk).update(status=status, **fields)
    run.refresh_from_db()
    return run


def complete(run: Run) -> Run:
    now = timezone.now()
    return set_status(run, RunStatus.COMPLETE, started_at=now - timedelta(seconds=90),
                      finished_at=now)
