from datetime import datetime
from decimal import Decimal
from typing import Any

from apps.failures.models import PipelineFailure
from apps.runs.models import Attempt, AttemptOutcome, Block, Run


def attempt_at(run: Run, moment: datetime, *, cost: str = "0", model: str = "claude-haiku-4-5",
               outcome: str = AttemptOutcome.SUCCEEDED, http_status: int | None = None) -> Attempt:
    """An attempt of the run's first block recorded at `moment` (created_at is set on insert, so it is
    moved there after)."""
    block = Block.objects.filter(run=run).order_by("block_index").first()
    attempt = Attempt.objects.create(run=run, block=block, number=1, outcome=outcome, model=model,
                                     cost_usd=Decimal(cost), http_status=http_status)
    Attempt.objects.filter(pk=attempt.pk).update(created_at=moment)
    return attempt


def dead_letter_at(run: Run, uid: str, moment: datetime, *, code: str = "api_error", parked: bool = True,
                   **fields: Any) -> PipelineFailure:
    block = Block.objects.get(run=run, uid=uid)
    row = PipelineFailure.objects.create(run=run, block=block, failing_function="test", error_code=code,
                                         next_retry_at=None if parked else moment, **fields)
    PipelineFailure.objects.filter(pk=row.pk).update(failed_at=moment)
    return row
