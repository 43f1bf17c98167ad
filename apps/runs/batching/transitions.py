"""The state machine of a Message Batch row, in one place: its statuses, their named sets, and every
status change as a queryset method that moves rows with one conditional UPDATE and returns how many
it moved (0: the row was not in the state that move starts from; someone else moved it first).

::

    submitting ──mark_submitted──► in_progress ──end──► ended ──mark_recorded──► recorded
        │  (created at the provider, or found               (results streamed into the ledger;
        │   there again after a crash)                       unanswered blocks given back)
        └──abandon──► abandoned  (the provider never got it: its blocks were given back)

The row is created `submitting` (the model's default) before the provider is asked, so a crash
between the two is found again (apps.runs.batching.poll). apps.runs.batching.submit and poll decide
when a batch moves; this module says how.
"""

from datetime import datetime
from typing import Any

from django.db import models


class MessageBatchStatus(models.TextChoices):
    # The row is written before the provider is asked, so a crash between the two is found again.
    SUBMITTING = "submitting", "Being submitted"
    IN_PROGRESS = "in_progress", "In progress at the provider"
    ENDED = "ended", "Ended at the provider; results being recorded"
    RECORDED = "recorded", "Results recorded"
    # The provider never got it (or it could not be found again): its blocks were given back.
    ABANDONED = "abandoned", "Abandoned"


# At the provider, results not all recorded yet: what beat looks at.
BATCH_OPEN = (MessageBatchStatus.IN_PROGRESS, MessageBatchStatus.ENDED)


class MessageBatchQuerySet(models.QuerySet):
    def submitting(self) -> "MessageBatchQuerySet":
        return self.filter(status=MessageBatchStatus.SUBMITTING)

    def open(self) -> "MessageBatchQuerySet":
        return self.filter(status__in=BATCH_OPEN)

    def mark_submitted(self, *, provider_batch_id: str, now: datetime,
                       counts: dict[str, Any] | None = None) -> int:
        """submitting -> in_progress: the provider has the batch (its create answered, or the batch
        was found there again after an interrupted submission)."""
        changes: dict[str, Any] = {"counts": counts} if counts is not None else {}
        return self.submitting().update(
            status=MessageBatchStatus.IN_PROGRESS, provider_batch_id=provider_batch_id, submitted_at=now,
            **changes,
        )

    def abandon(self, *, error: str) -> int:
        """submitting -> abandoned: the provider refused the create or has no such batch; the caller
        gives its blocks back."""
        return self.submitting().update(status=MessageBatchStatus.ABANDONED, error=error[:2000])

    def end(self, *, ended_at: datetime, polled_at: datetime, counts: dict[str, Any]) -> int:
        """in_progress -> ended: the provider has finished it; its results are recorded next."""
        return self.filter(status=MessageBatchStatus.IN_PROGRESS).update(
            status=MessageBatchStatus.ENDED, ended_at=ended_at, polled_at=polled_at, counts=counts, error="",
        )

    def mark_recorded(self, *, now: datetime) -> int:
        """ended -> recorded: every result line is in the ledger, and the blocks it did not answer
        were given back."""
        return self.filter(status=MessageBatchStatus.ENDED).update(
            status=MessageBatchStatus.RECORDED, recorded_at=now,
        )
