"""A delivery's moves, each from the state it starts from: an attempt's result is written only while
the row is still that attempt's, and a redelivery reopens a delivery whatever became of it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.webhooks.models import WebhookDelivery
from apps.webhooks.sending import SendOutcome

pytestmark = pytest.mark.django_db

OK = SendOutcome(True, status_code=204)
BROKEN = SendOutcome(False, status_code=500, error="http_500", detail="500 text/plain, 3 bytes")


@pytest.fixture
def delivery(hooked_run, end_run, queued) -> WebhookDelivery:
    """A recorded event, due now, not tried yet."""
    return end_run(hooked_run)


def rows(delivery: WebhookDelivery):
    return WebhookDelivery.objects.filter(pk=delivery.pk)


def claimed(delivery: WebhookDelivery) -> WebhookDelivery:
    now = timezone.now()
    row = rows(delivery).claim(now=now, lease_until=now + timedelta(minutes=5))
    assert row is not None
    return row


def test_a_claim_counts_the_attempt_and_holds_the_row_until_its_lease_ends(delivery):
    row = claimed(delivery)
    assert row.attempts == 1
    assert rows(delivery).claim(now=timezone.now(), lease_until=timezone.now()) is None  # not due now
    assert rows(delivery).claim(now=row.next_attempt_at, lease_until=row.next_attempt_at) is not None


def test_a_delivered_attempt_ends_the_delivery_once(delivery):
    row = claimed(delivery)
    now = timezone.now()
    assert rows(delivery).deliver(attempts=row.attempts, now=now, outcome=OK) == 1
    assert rows(delivery).deliver(attempts=row.attempts, now=now, outcome=OK) == 0
    delivery.refresh_from_db()
    assert (delivery.status, delivery.delivered_at, delivery.next_attempt_at, delivery.last_status_code) == (
        "delivered", now, None, 204)


def test_the_result_of_an_attempt_taken_over_since_is_not_written(delivery):
    first = claimed(delivery)
    second = rows(delivery).claim(now=first.next_attempt_at, lease_until=first.next_attempt_at)  # it died
    assert second is not None
    assert rows(delivery).give_up(attempts=first.attempts, outcome=BROKEN) == 0
    assert rows(delivery).deliver(attempts=second.attempts, now=timezone.now(), outcome=OK) == 1


def test_a_failed_attempt_within_the_window_waits_for_the_next_one(delivery):
    row = claimed(delivery)
    at = timezone.now() + timedelta(seconds=30)
    assert rows(delivery).retry_later(attempts=row.attempts, at=at, outcome=BROKEN) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at, delivery.last_error) == ("pending", at, "http_500")


def test_a_delivery_given_up_or_delivered_is_reopened_by_a_redelivery(delivery):
    row = claimed(delivery)
    rows(delivery).give_up(attempts=row.attempts, outcome=BROKEN)
    now = timezone.now()
    assert rows(delivery).redeliver(now=now, give_up_at=now + timedelta(days=1)) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at, delivery.give_up_at) == (
        "pending", now, now + timedelta(days=1))
    assert list(WebhookDelivery.objects.due(now)) == [delivery]
