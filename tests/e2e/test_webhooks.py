"""A run that ends on a real worker delivers its signed event to a receiver on this machine: the first
attempt from the worker that ended the run, the retry after a failed attempt from beat's sweep."""

import json

import pytest
from standardwebhooks.webhooks import Webhook

from apps.webhooks.models import DeliveryStatus, WebhookDelivery
from apps.webhooks.services import webhook_secret_rotate
from tests.e2e.conftest import run_status, wait_for
from tests.factories import make_run
from tests.webhooks.conftest import Receiver, receiver  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_run_ending_on_a_worker_is_posted_signed_and_retried_by_beat_until_delivered(
        owner, e2e_key, mock_process, stack, receiver: Receiver):  # noqa: F811
    receiver.statuses = [500, 200]
    _, secret = webhook_secret_rotate(owner=owner)
    stack.worker("w1")
    stack.beat()
    run = make_run(owner, e2e_key, [f"essay {i}" for i in range(20)], webhook_url=receiver.url)

    wait_for(lambda: run_status(run) == "complete", timeout=90, what="run to complete", stack=stack)
    wait_for(lambda: WebhookDelivery.objects.filter(run=run, status=DeliveryStatus.DELIVERED).exists(),
             timeout=60, what="the webhook to be delivered", stack=stack)

    delivery = WebhookDelivery.objects.get(run=run)
    assert (delivery.attempts, delivery.last_status_code) == (2, 200)
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.event_id
    event = Webhook(secret).verify(second.body, second.headers)
    assert (event["type"], event["data"]["run_id"], event["data"]["status"]) == (
        "run.finished", str(run.pk), "complete")
    assert event["data"]["counts"]["succeeded"] == 20
    assert json.loads(first.body) == event
