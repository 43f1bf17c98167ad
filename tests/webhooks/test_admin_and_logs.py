"""The delivery log in the admin (columns, "redeliver now"), the secret's admin page (suffix only),
and the secret in no log line and no admin page."""

import logging

import pytest

from apps.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSecret
from apps.webhooks.services import delivery_attempt, webhook_secret_rotate

pytestmark = pytest.mark.django_db

DELIVERIES = "/admin/webhooks/webhookdelivery/"


@pytest.fixture
def operator(client, staff):
    client.force_login(staff)
    return client


def test_the_delivery_list_shows_run_pass_status_attempts_code_and_moments(
        operator, hooked_run, end_run, deliver_inline, receiver):
    receiver.statuses = [500]
    end_run(hooked_run)
    page = operator.get(DELIVERIES).content.decode()
    for column in ("run", "pass number", "status", "attempts", "last status code", "last error",
                   "next attempt", "delivered at"):
        assert f">{column}<" in page.lower() or column in page.lower(), column
    assert str(hooked_run.pk)[:8] in page
    assert "http_500" in page


def test_redeliver_now_queues_the_delivery_again(operator, hooked_run, end_run, deliver_inline, receiver):
    receiver.statuses = [500]
    delivery = end_run(hooked_run)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    response = operator.post(DELIVERIES, {"action": "redeliver_now", "_selected_action": [delivery.pk]},
                             follow=True)
    assert "1 delivery(ies) queued again" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    receiver.statuses = [200]
    assert delivery_attempt(delivery_id=delivery.pk).status == DeliveryStatus.DELIVERED


def test_a_delivery_page_shows_the_payload_and_the_last_error(operator, hooked_run, end_run,
                                                             deliver_inline, receiver):
    receiver.statuses = [500]
    delivery = end_run(hooked_run)
    page = operator.get(f"{DELIVERIES}{delivery.pk}/change/").content.decode()
    assert "run.finished" in page and delivery.event_id in page
    assert "HTTP 500" in page


def test_the_secret_admin_shows_only_the_suffix(operator, owner, secret):
    row = WebhookSecret.objects.get(owner=owner)
    for url in ("/admin/webhooks/webhooksecret/", f"/admin/webhooks/webhooksecret/{row.pk}/change/"):
        page = operator.get(url).content.decode()
        assert f"whsec_…{secret[-4:]}" in page
        assert secret not in page and row.secret_ciphertext not in page


def test_the_secret_is_in_no_admin_page(operator, hooked_run, end_run, deliver_inline, secret):
    delivery = end_run(hooked_run)
    for url in (DELIVERIES, f"{DELIVERIES}{delivery.pk}/change/", f"/admin/runs/run/{hooked_run.pk}/change/"):
        assert secret not in operator.get(url).content.decode(), url


def test_the_run_page_shows_its_webhook_url(operator, hooked_run, receiver):
    page = operator.get(f"/admin/runs/run/{hooked_run.pk}/change/").content.decode()
    assert receiver.url.replace("&", "&amp;") in page


def test_the_secret_and_the_receivers_query_are_in_no_log_line(caplog, owner, offline_key, end_run,
                                                               deliver_inline, receiver):
    from tests.factories import make_run

    caplog.set_level(logging.DEBUG)
    _, secret = webhook_secret_rotate(owner=owner)
    receiver.statuses = [500, 204]
    run = make_run(owner, offline_key, ["one"], webhook_url=receiver.url + "&token=receiver-token-42")
    delivery = end_run(run)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.created_at)
    assert delivery_attempt(delivery_id=delivery.pk).status == DeliveryStatus.DELIVERED
    text = caplog.text
    assert "delivered" in text and "http_500" in text  # the deliveries were logged...
    assert secret not in text and secret.removeprefix("whsec_") not in text  # ...without the secret
    assert "receiver-token-42" not in text
