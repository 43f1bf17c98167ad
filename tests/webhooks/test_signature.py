"""Deliveries are signed the Standard Webhooks way, verifiable with the `standardwebhooks` library by
the receiver; a captured delivery sent again later is refused on its timestamp, while a redelivery
keeps its id and gets a fresh timestamp and signature."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from apps.webhooks.services import delivery_attempt, delivery_redeliver, webhook_secret_rotate

pytestmark = pytest.mark.django_db


def signed(request) -> dict[str, str]:
    return {name: request.headers[name] for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}


def test_the_receiver_verifies_the_signature_with_the_secret_shown_at_creation(
        hooked_run, end_run, deliver_inline, receiver, secret):
    end_run(hooked_run)
    request = receiver.received[0]
    event = Webhook(secret).verify(request.body, request.headers)
    assert (event["type"], event["data"]["run_id"]) == ("run.finished", str(hooked_run.pk))


def test_the_signature_header_is_v1_and_base64_hmac_sha256(hooked_run, end_run, deliver_inline, receiver):
    import base64

    end_run(hooked_run)
    headers = signed(receiver.received[0])
    version, signature = headers["webhook-signature"].split(",")
    assert version == "v1"
    assert len(base64.b64decode(signature)) == 32
    assert abs(int(headers["webhook-timestamp"]) - timezone.now().timestamp()) < 60


def test_a_body_changed_on_the_way_fails_verification(hooked_run, end_run, deliver_inline, receiver, secret):
    end_run(hooked_run)
    request = receiver.received[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"canceled", b"complete"), request.headers)


def test_a_captured_delivery_sent_again_later_is_refused_on_its_timestamp(
        hooked_run, end_run, deliver_inline, receiver, secret):
    end_run(hooked_run)
    captured = receiver.received[0]
    with time_machine.travel(timezone.now() + timedelta(minutes=6)), \
            pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(captured.body, captured.headers)


def test_a_redelivery_keeps_the_event_id_with_a_new_timestamp_and_signature_that_verify(
        hooked_run, end_run, deliver_inline, receiver, secret):
    delivery = end_run(hooked_run)
    later = timezone.now() + timedelta(minutes=10)
    with time_machine.travel(later, tick=True):
        delivery_redeliver(delivery_id=delivery.pk)  # queued after commit: no commit here, so by hand
        delivery_attempt(delivery_id=delivery.pk)
        first, second = (signed(r) for r in receiver.received)
        assert second["webhook-id"] == first["webhook-id"] == delivery.event_id
        assert int(second["webhook-timestamp"]) >= int(first["webhook-timestamp"]) + 600
        assert second["webhook-signature"] != first["webhook-signature"]
        assert Webhook(secret).verify(receiver.received[1].body, receiver.received[1].headers)
        with pytest.raises(WebhookVerificationError, match="too old"):
            Webhook(secret).verify(receiver.received[0].body, receiver.received[0].headers)


def test_after_a_rotation_deliveries_are_signed_with_the_new_secret_only(
        owner, hooked_run, end_run, deliver_inline, receiver, secret):
    _, new_secret = webhook_secret_rotate(owner=owner)
    end_run(hooked_run)
    request = receiver.received[0]
    assert Webhook(new_secret).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body, request.headers)
