import pytest
import redis
from django.conf import settings

from apps.runs.dispatch import run_dispatch_marker_clear
from apps.runs.models import Block
from apps.runs.services import blocks_claim, pump
from tests.factories import make_run

pytestmark = pytest.mark.django_db


def queued_drains() -> int:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL).llen("llm")


def test_the_pump_wakes_a_run_with_due_work_once_until_a_drain_takes_it(owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b"])  # created in the test transaction: no dispatch yet
    assert pump()["dispatched"] == 1
    assert pump()["dispatched"] == 0  # the wake-up is still queued
    run_dispatch_marker_clear(run_id=run.pk)
    assert pump()["dispatched"] == 1
    assert queued_drains() == 2


def test_the_pump_leaves_a_run_alone_while_its_parallelism_is_used(owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b", "c"], parallelism=2)
    blocks_claim(run_id=run.pk, limit=2, worker="busy")
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
