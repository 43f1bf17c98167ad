"""The state machine of a webhook delivery, in one place: its statuses and every move of a delivery as
a queryset method with one conditional write, returning how many rows it moved (0: the row was not in
the state that move starts from, or another attempt took it meanwhile).

::

                 claim (attempts+1; next_attempt_at = the attempt's lease)
    pending ◄──────────────────────────────────────────────┐
      │ │  └── retry_later (a failed attempt, within the window) ┘
      │ └───── deliver (2xx) ──────────────► delivered ─┐
      └─────── give_up (past give_up_at) ──► failed ────┴── redeliver ──► pending (due now)

A row is created `pending` (the model's default) when a pass's event is recorded. An attempt's result
is written only if the row is still that attempt's (`pending`, `attempts` unchanged): a redelivery or
another sender that took it since wins. apps.webhooks.services decides when; this module says how.
"""

from datetime import datetime
from typing import TYPE_CHECKING

from django.db import models, transaction

if TYPE_CHECKING:
    from apps.webhooks.models import WebhookDelivery
    from apps.webhooks.sending import SendOutcome


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending (being tried, or waiting for its next attempt)"
    DELIVERED = "delivered", "Delivered (the receiver answered 2xx)"
    FAILED = "failed", "Failed (given up after the retry window)"


def _last_attempt(outcome: "SendOutcome") -> dict[str, object]:
    """What a row keeps of its last attempt: the receiver's status and our own error class and detail."""
    return {"last_status_code": outcome.status_code, "last_error": outcome.error,
            "last_error_detail": outcome.detail}


class WebhookDeliveryQuerySet(models.QuerySet):
    def due(self, now: datetime) -> "WebhookDeliveryQuerySet":
        """Pending deliveries whose next attempt (or the lease of a lost one) has come."""
        return self.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)

    def claim(self, *, now: datetime, lease_until: datetime) -> "WebhookDelivery | None":
        """Take one due delivery for an attempt: the attempt is counted and `next_attempt_at` moves to
        the end of its lease, so a sender that dies mid-call leaves a row that falls due again by
        itself. None: not due, done, or being taken by another sender right now."""
        with transaction.atomic():
            row = self.select_for_update(skip_locked=True).due(now).first()
            if row is None:
                return None
            row.attempts += 1
            row.last_attempt_at = now
            row.next_attempt_at = lease_until
            row.save(update_fields=["attempts", "last_attempt_at", "next_attempt_at"])
        return row

    def _of_attempt(self, attempts: int) -> "WebhookDeliveryQuerySet":
        """The fence: still pending, and no other attempt taken since this one."""
        return self.filter(status=DeliveryStatus.PENDING, attempts=attempts)

    def deliver(self, *, attempts: int, now: datetime, outcome: "SendOutcome") -> int:
        """pending -> delivered: the receiver answered 2xx."""
        return self._of_attempt(attempts).update(
            status=DeliveryStatus.DELIVERED, delivered_at=now, next_attempt_at=None, **_last_attempt(outcome),
        )

    def give_up(self, *, attempts: int, outcome: "SendOutcome") -> int:
        """pending -> failed: the attempt failed past the retry window."""
        return self._of_attempt(attempts).update(
            status=DeliveryStatus.FAILED, next_attempt_at=None, **_last_attempt(outcome),
        )

    def retry_later(self, *, attempts: int, at: datetime, outcome: "SendOutcome") -> int:
        """pending stays pending: the attempt failed within the window; the next one is due `at`."""
        return self._of_attempt(attempts).update(next_attempt_at=at, **_last_attempt(outcome))

    def redeliver(self, *, now: datetime, give_up_at: datetime) -> int:
        """Any status -> pending, due now, with a retry window that ends at `give_up_at`: the event is
        sent again (the same event id) whatever became of it."""
        return self.update(status=DeliveryStatus.PENDING, next_attempt_at=now, give_up_at=give_up_at)
