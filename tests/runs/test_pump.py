import pytest
import redis
from django.conf import settings

from apps.runs.dispatch import serve_marker_clear, server_register
from apps.runs.models import Block
from apps.runs.services import blocks_claim, pump
from tests.factories import make_run

pytestmark = pytest.mark.django_db


def queued_serve_tasks() -> int:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL).llen("llm")


def test_the_pump_wakes_a_serving_loop_once_until_one_takes_the_wake_up(owner, offline_key):
    make_run(owner, offline_key, ["a", "b"])  # created in the test transaction: no dispatch yet
    assert pump()["dispatched"] == 1
    assert pump()["dispatched"] == 0  # the wake-up is still queued
    serve_marker_clear()
    assert pump()["dispatched"] == 1
    assert queued_serve_tasks() == 2


def test_the_pump_sends_no_wake_up_while_a_serving_loop_is_alive(owner, offline_key):
    make_run(owner, offline_key, ["a", "b"])
    assert server_register(worker="elsewhere:1", ttl_seconds=30)
    assert pump()["dispatched"] == 0


def test_the_pump_sends_no_wake_up_when_no_run_has_due_work(owner, offline_key):
    run = make_run(owner, offline_key, ["a"])
    blocks_claim(run_id=run.pk, limit=1, worker="busy")
    assert pump()["dispatched"] == 0


def test_the_pump_returns_expired_leases_to_pending(owner, offline_key):
    run = make_run(owner, offline_key, ["a"])
    blocks_claim(run_id=run.pk, limit=1, worker="gone")
    Block.objects.filter(run=run).update(lease_expires_at="2000-01-01T00:00:00Z")
    assert pump()["expired_leases"] == 1
    block = run.blocks.get()
    assert (block.status, block.attempts) == ("pending", 1)


def test_the_pump_ignores_paused_runs(owner, offline_key):
    run = make_run(owner, offline_key, ["a"])
    run.status = "paused"
    run.save(update_fields=["status"])
    assert pump()["dispatched"] == 0
