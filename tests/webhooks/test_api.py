"""/api/v1/webhooks/: the signing secret (shown once, at creation) and the delivery log, owner-scoped,
with a redelivery that keeps the event id."""

import pytest

from apps.webhooks.models import DeliveryStatus, WebhookSecret
from apps.webhooks.services import delivery_attempt
from tests.factories import make_run

pytestmark = pytest.mark.django_db

SECRET_URL = "/api/v1/webhooks/secret/"
DELIVERIES = "/api/v1/webhooks/deliveries/"


def test_creating_the_secret_shows_it_once(api, owner):
    response = api(owner).post(SECRET_URL)
    assert response.status_code == 201
    body = response.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert body["suffix"] == body["secret"][-4:]
    assert response["Cache-Control"] == "no-store"


def test_reading_the_secret_later_shows_only_its_suffix_and_when_it_was_made(api, owner):
    secret = api(owner).post(SECRET_URL).json()["secret"]
    response = api(owner).get(SECRET_URL)
    assert response.status_code == 200
    assert set(response.json()) == {"suffix", "created_at"}
    assert secret not in response.content.decode()


def test_the_secret_is_stored_encrypted(api, owner):
    secret = api(owner).post(SECRET_URL).json()["secret"]
    row = WebhookSecret.objects.get(owner=owner)
    assert secret not in row.secret_ciphertext
    assert secret[len("whsec_"):] not in row.secret_ciphertext


def test_posting_again_rotates_the_secret(api, owner):
    first = api(owner).post(SECRET_URL).json()["secret"]
    second = api(owner).post(SECRET_URL).json()["secret"]
    assert first != second
    assert WebhookSecret.objects.filter(owner=owner).count() == 1


def test_a_user_without_a_secret_reads_404(api, owner):
    assert api(owner).get(SECRET_URL).status_code == 404


def test_the_secret_needs_authentication(api):
    assert api().post(SECRET_URL).status_code == 401


def test_the_delivery_log_lists_a_delivery_with_its_outcome(api, owner, hooked_run, end_run, deliver_inline):
    delivery = end_run(hooked_run)
    body = api(owner).get(DELIVERIES).json()
    assert body["count"] == 1
    row = body["results"][0]
    assert (row["id"], row["run"], row["pass_number"], row["event_id"], row["status"], row["attempts"],
            row["last_status_code"]) == (delivery.pk, str(hooked_run.pk), 1, delivery.event_id,
                                         "delivered", 1, 204)
    assert row["delivered_at"] is not None


def test_a_failed_attempt_shows_its_status_code_error_class_and_next_attempt(
        api, owner, hooked_run, end_run, deliver_inline, receiver):
    receiver.statuses = [500]
    end_run(hooked_run)
    row = api(owner).get(DELIVERIES).json()["results"][0]
    assert (row["status"], row["last_status_code"], row["last_error"]) == ("pending", 500, "http_500")
    assert row["next_attempt_at"] is not None


def test_another_users_deliveries_are_not_listed_and_are_404(api, owner, outsider, hooked_run, end_run,
                                                             queued):
    delivery = end_run(hooked_run)
    assert api(outsider).get(DELIVERIES).json()["count"] == 0
    assert api(outsider).get(f"{DELIVERIES}{delivery.pk}/").status_code == 404
    assert api(outsider).post(f"{DELIVERIES}{delivery.pk}/redeliver/").status_code == 404


def test_staff_see_every_users_deliveries(api, staff, hooked_run, end_run, queued):
    end_run(hooked_run)
    assert api(staff).get(DELIVERIES).json()["count"] == 1


def test_the_log_filters_by_run_and_status(api, owner, offline_key, hooked_run, receiver, end_run,
                                           deliver_inline):
    end_run(hooked_run)
    receiver.statuses = [500]
    other = end_run(make_run(owner, offline_key, ["x"], webhook_url=receiver.url))
    by_run = api(owner).get(DELIVERIES, {"run": str(other.run_id)}).json()["results"]
    assert [row["id"] for row in by_run] == [other.pk]
    pending = api(owner).get(DELIVERIES, {"status": "pending"}).json()["results"]
    assert [row["id"] for row in pending] == [other.pk]
    assert api(owner).get(DELIVERIES, {"status": "lost"}).status_code == 400


def test_a_delivery_shows_the_event_as_sent(api, owner, hooked_run, end_run, deliver_inline):
    delivery = end_run(hooked_run)
    body = api(owner).get(f"{DELIVERIES}{delivery.pk}/").json()
    assert body["payload"]["type"] == "run.finished"
    assert body["payload"]["data"]["run_id"] == str(hooked_run.pk)


def test_a_malformed_delivery_id_is_404(api, owner):
    assert api(owner).get(f"{DELIVERIES}abc/").status_code == 404
    assert api(owner).get(f"{DELIVERIES}{2**70}/").status_code == 404


def test_redeliver_sends_the_same_event_again_with_the_same_id(api, owner, hooked_run, end_run,
                                                               deliver_inline, receiver):
    delivery = end_run(hooked_run)
    response = api(owner).post(f"{DELIVERIES}{delivery.pk}/redeliver/")
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    row = delivery_attempt(delivery_id=delivery.pk)  # the queued task, after the commit
    assert (row.status, row.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery.event_id] * 2


def test_a_failed_delivery_redelivered_gets_a_new_day_of_retries(api, owner, hooked_run, end_run,
                                                                 deliver_inline, receiver):
    from datetime import timedelta

    from django.utils import timezone

    from apps.webhooks.models import WebhookDelivery

    delivery = end_run(hooked_run)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, next_attempt_at=None,
                                                          give_up_at=timezone.now() - timedelta(hours=1))
    body = api(owner).post(f"{DELIVERIES}{delivery.pk}/redeliver/").json()
    assert body["status"] == "pending"
    delivery.refresh_from_db()
    assert delivery.give_up_at > timezone.now() + timedelta(hours=23)


def test_the_run_create_api_still_rejects_unknown_fields(api, owner, offline_key):
    response = api(owner).post("/api/v1/runs/", {"key": offline_key.pk, "model": "claude-haiku-4-5",
                                                 "blocks": [{"input": "x"}], "webhook": "https://x"},
                               format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["webhook"]


def test_the_secret_is_in_no_response_but_its_creation(api, owner, hooked_run, end_run, deliver_inline,
                                                       secret):
    delivery = end_run(hooked_run)
    client = api(owner)
    for url in (SECRET_URL, DELIVERIES, f"{DELIVERIES}{delivery.pk}/", f"/api/v1/runs/{hooked_run.pk}/",
                "/api/v1/runs/"):
        text = client.get(url).content.decode()
        assert secret not in text and secret.removeprefix("whsec_") not in text, url
    assert secret not in client.post(f"{DELIVERIES}{delivery.pk}/redeliver/").content.decode()


def test_the_schema_documents_the_webhook_endpoints(api, owner):
    schema = api(owner).get("/api/schema/", {"format": "json"}).json()
    assert {"/api/v1/webhooks/secret/", "/api/v1/webhooks/deliveries/",
            "/api/v1/webhooks/deliveries/{delivery_id}/redeliver/"} <= set(schema["paths"])

