"""A run's pass ends, its event is recorded once and POSTed to the run's webhook_url by the delivery
task; a failure is retried with backoff until delivered or a day has passed; nothing is lost with a
task or a process."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.runs.models import Run
from apps.webhooks.models import DeliveryStatus, WebhookDelivery
from apps.webhooks.services import (
    _claim,
    deliveries_sweep,
    delivery_attempt,
    delivery_record,
    retry_delay,
)
from apps.webhooks.tasks import deliver_webhook
from tests.factories import make_run

pytestmark = pytest.mark.django_db


def test_a_run_that_ends_posts_its_event_to_the_receiver(hooked_run, end_run, deliver_inline, receiver):
    delivery = end_run(hooked_run)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.DELIVERED, 1, 204)
    assert delivery.delivered_at is not None
    [request] = receiver.received
    assert (request.method, request.path) == ("POST", "/hooks/conveyor?source=test")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == delivery.event_id


def test_the_event_says_which_run_and_pass_ended_how_with_counts_tokens_cost_and_timings(
        hooked_run, end_run, deliver_inline, receiver):
    end_run(hooked_run)
    hooked_run.refresh_from_db()
    event = json.loads(receiver.received[0].body)
    assert event["type"] == "run.finished"
    data = event["data"]
    assert (data["run_id"], data["name"], data["pass_number"], data["status"]) == (
        str(hooked_run.pk), "hooked", 1, "canceled")
    assert data["counts"] == {"total": 2, "succeeded": 0, "failed": 0, "canceled": 2, "remaining": 0}
    assert data["usage"] == {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 0}
    assert data["cost_usd"] == "0.00000000"
    assert data["finished_at"] is not None and event["timestamp"] == data["finished_at"]
    assert data["created_at"] is not None


def test_the_event_links_to_the_runs_results_and_failures_in_every_export_format(
        hooked_run, end_run, deliver_inline, receiver, settings):
    settings.PUBLIC_BASE_URL = "https://conveyor.example.com"
    end_run(hooked_run)
    links = json.loads(receiver.received[0].body)["data"]["links"]
    base = f"https://conveyor.example.com/api/v1/runs/{hooked_run.pk}"
    assert links["run"] == f"{base}/"
    assert links["results"] == {fmt: f"{base}/results/?format={fmt}" for fmt in ("jsonl", "csv", "parquet")}
    assert links["failures"]["csv"] == f"{base}/failures/?format=csv"


def test_without_a_public_base_url_the_links_are_paths(hooked_run, end_run, deliver_inline, receiver):
    end_run(hooked_run)
    links = json.loads(receiver.received[0].body)["data"]["links"]
    assert links["results"]["jsonl"] == f"/api/v1/runs/{hooked_run.pk}/results/?format=jsonl"


def test_a_run_without_a_webhook_url_records_no_event(owner, offline_key, end_run_plain):
    run = make_run(owner, offline_key, ["one"])
    end_run_plain(run)
    assert not WebhookDelivery.objects.exists()


def test_recording_the_same_pass_again_keeps_one_event_with_one_id(hooked_run, end_run, queued):
    first = end_run(hooked_run)
    again = delivery_record(run_id=hooked_run.pk, pass_number=1)
    assert again.pk == first.pk
    assert WebhookDelivery.objects.filter(run=hooked_run).count() == 1


def test_each_pass_has_its_own_stable_event_id(hooked_run, end_run, queued):
    first = end_run(hooked_run)
    Run.objects.filter(pk=hooked_run.pk).update(current_pass=2)
    second = delivery_record(run_id=hooked_run.pk, pass_number=2, status="complete")
    assert first.event_id.startswith("msg_") and second.event_id.startswith("msg_")
    assert first.event_id != second.event_id


def test_a_receiver_that_answers_500_gets_the_event_again_later_until_it_takes_it(
        hooked_run, end_run, deliver_inline, receiver):
    receiver.statuses = [500, 200]
    receiver.headers = {"content-type": "text/html"}
    receiver.body = b"<h1>oops</h1>"
    delivery = end_run(hooked_run)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        DeliveryStatus.PENDING, 1, 500, "http_500")
    assert delivery.next_attempt_at > delivery.last_attempt_at
    with time_machine.travel(timezone.now() + timedelta(seconds=30), tick=True):
        deliveries_sweep()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        DeliveryStatus.DELIVERED, 2, 200, "")
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.event_id
    assert first.body == second.body


def test_a_failed_attempt_keeps_the_answers_status_type_and_size_never_its_body(
        hooked_run, end_run, deliver_inline, receiver):
    receiver.statuses = [503]
    receiver.headers = {"content-type": "text/html; charset=utf-8"}
    receiver.body = b"<html>internal console: db password hunter2</html>"
    delivery = end_run(hooked_run)
    delivery.refresh_from_db()
    assert delivery.last_error_detail == (
        f"HTTP 503 (content-type text/html, {len(receiver.body)} bytes)")
    assert "hunter2" not in delivery.last_error_detail + delivery.last_error


def test_a_receiver_that_cannot_be_reached_is_a_connect_error_retried_later(
        owner, offline_key, secret, end_run, deliver_inline):
    from tests.fake_servers import serving

    with serving(lambda request: None) as gone:  # a port that was open, closed before the delivery
        url = gone.base_url + "/hook"
    run = make_run(owner, offline_key, ["one"], webhook_url=url)
    delivery = end_run(run)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error, delivery.last_status_code) == (
        DeliveryStatus.PENDING, "connect_error", None)


def test_retries_back_off_exponentially_with_jitter_up_to_a_cap(settings):
    settings.CONVEYOR = {**settings.CONVEYOR, "WEBHOOK_RETRY_BASE_SECONDS": 30.0,
                         "WEBHOOK_RETRY_MAX_SECONDS": 3600.0}
    for attempts, full in ((1, 30), (2, 60), (5, 480), (20, 3600)):
        delays = {retry_delay(attempts) for _ in range(50)}
        assert all(full / 2 <= d <= full for d in delays)
        assert len(delays) > 1  # jittered


def test_a_delivery_still_failing_a_day_later_is_given_up_as_failed(hooked_run, end_run, deliver_inline,
                                                                    receiver):
    receiver.statuses = [500]
    delivery = end_run(hooked_run)
    with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1), tick=True):
        deliveries_sweep()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (DeliveryStatus.FAILED, 2, None)
    assert delivery.delivered_at is None
    assert len(receiver.received) == 2


def test_the_last_retry_is_made_at_the_end_of_the_day_not_after_it(hooked_run, end_run, deliver_inline,
                                                                   receiver, settings):
    settings.CONVEYOR = {**settings.CONVEYOR, "WEBHOOK_RETRY_BASE_SECONDS": 20 * 3600.0,
                         "WEBHOOK_RETRY_MAX_SECONDS": 40 * 3600.0}
    receiver.statuses = [500]
    delivery = end_run(hooked_run)
    with time_machine.travel(timezone.now() + timedelta(hours=20), tick=True):
        deliveries_sweep()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.next_attempt_at == delivery.give_up_at


def test_a_delivery_whose_task_was_lost_is_sent_by_the_beat_sweep(hooked_run, end_run, queued, receiver,
                                                                  monkeypatch):
    delivery = end_run(hooked_run)
    assert queued == [delivery.pk]  # the message that a lost broker took along
    assert receiver.received == []
    from apps.webhooks import services

    monkeypatch.setattr(services, "_enqueue", lambda delivery_id, **kw: deliver_webhook(delivery_id))
    assert deliveries_sweep() == {"recorded": 0, "queued": 1}
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert len(receiver.received) == 1


def test_an_event_lost_with_the_process_that_ended_the_run_is_recorded_by_the_sweep(
        hooked_run, deliver_inline, receiver):
    from apps.runs.services import run_cancel

    run_cancel(run_id=hooked_run.pk)  # its after-commit work (run_finished) never runs: "the process died"
    assert not WebhookDelivery.objects.exists()
    assert deliveries_sweep()["recorded"] == 1
    delivery = WebhookDelivery.objects.get(run=hooked_run)
    assert (delivery.pass_number, delivery.status) == (1, DeliveryStatus.DELIVERED)
    assert json.loads(receiver.received[0].body)["data"]["status"] == "canceled"


def test_an_attempt_whose_sender_died_is_made_again_once_its_lease_ends(hooked_run, end_run, queued,
                                                                        receiver):
    delivery = end_run(hooked_run)
    assert _claim(delivery.pk, now=timezone.now()) is not None  # taken, then the worker was killed
    assert delivery_attempt(delivery_id=delivery.pk) is None  # not due while the lease holds
    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=True):
        row = delivery_attempt(delivery_id=delivery.pk)
    assert (row.status, row.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert len(receiver.received) == 1


def test_the_task_does_nothing_for_a_delivery_already_delivered(hooked_run, end_run, deliver_inline,
                                                                receiver):
    delivery = end_run(hooked_run)
    assert deliver_webhook(delivery.pk) == {"delivery": delivery.pk, "attempted": False}
    assert len(receiver.received) == 1
