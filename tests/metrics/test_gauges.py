"""The gauges, read from PostgreSQL and Redis when Prometheus scrapes: what an operator sees is the
database's state at that moment."""

from datetime import timedelta

import pytest
import redis
import time_machine
from django.conf import settings
from django.utils import timezone

from apps.failures.models import PipelineFailure
from apps.health.heartbeats import PUMP, heartbeat_record
from apps.keys.models import ProviderKey
from apps.lanes.board import Post, board_key
from apps.lanes.gate import LaneRef
from apps.lanes.limits import limit_group
from apps.runs.models import Run
from apps.runs.services import blocks_claim, outcomes_record
from apps.runs.services.decisions import Outcome
from apps.runs.transitions import PausedCause, RunStatus
from tests.api.helpers import record_attempt, set_status
from tests.factories import MODEL, make_key, make_run

pytestmark = pytest.mark.django_db


def test_runs_are_counted_by_status(owner, offline_key, scrape):
    make_run(owner, offline_key, ["a"])
    make_run(owner, offline_key, ["b"])
    running = make_run(owner, offline_key, ["c"])
    blocks_claim(run_id=running.pk, limit=1, worker="w")

    result = scrape()
    assert result.value("conveyor_runs", status="queued") == 2
    assert result.value("conveyor_runs", status="running") == 1
    assert result.value("conveyor_runs", status="complete") == 0


def test_paused_runs_are_counted_by_cause(owner, offline_key, scrape):
    run = make_run(owner, offline_key, ["a"])
    Run.objects.filter(pk=run.pk).pause(cause=PausedCause.BUDGET, reason="budget spent")

    result = scrape()
    assert result.value("conveyor_runs_paused", cause="budget") == 1
    assert result.value("conveyor_runs_paused", cause="key_rejected") == 0


def test_active_runs_with_caching_on_are_counted(owner, offline_key, scrape):
    make_run(owner, offline_key, ["a"], options={"cache": True})
    make_run(owner, offline_key, ["b"])
    assert scrape().value("conveyor_runs_caching") == 1


def caching_run_with_calls(owner, key, **usage: int) -> Run:
    """A running caching run past its warm-up, with eight answered calls after its first reply."""
    run = make_run(owner, key, ["a", "b"], system_prompt="Grade. " * 1000, options={"cache": True})
    run = set_status(run, RunStatus.RUNNING, cache_warmed=True,
                     cache_read_input_tokens=usage.get("cache_read_input_tokens", 0))
    block = run.blocks.first()
    start = timezone.now() - timedelta(minutes=5)
    for n in range(1, 10):
        record_attempt(block, number=n, request_id=f"req_{n}", input_tokens=2000, latency_ms=500,
                       started_at=start + timedelta(seconds=n), **usage)
    return run


def test_caching_runs_past_their_warm_up_that_read_nothing_are_counted(owner, offline_key, scrape):
    caching_run_with_calls(owner, offline_key)
    caching_run_with_calls(owner, offline_key, cache_read_input_tokens=1500)
    make_run(owner, offline_key, ["c"], options={"cache": True})  # not warmed yet: no call answered
    assert scrape().value("conveyor_runs_cache_not_hitting") == 1


def test_a_caching_run_that_ended_is_not_counted_as_not_hitting(owner, offline_key, scrape):
    set_status(caching_run_with_calls(owner, offline_key), RunStatus.COMPLETE)
    assert scrape().value("conveyor_runs_cache_not_hitting") == 0


def test_open_blocks_are_counted_as_pending_and_claimed(owner, offline_key, scrape):
    run = make_run(owner, offline_key, [f"text {i}" for i in range(5)], parallelism=10)
    claim = blocks_claim(run_id=run.pk, limit=3, worker="w")
    outcomes_record(run_id=run.pk, outcomes=[
        Outcome(block_id=claim.blocks[0].id, lease_token=claim.lease_token, attempt=1, output="done"),
    ])

    result = scrape()
    assert result.value("conveyor_blocks", status="claimed") == 2
    assert result.value("conveyor_blocks", status="pending") == 2


def test_unresolved_dead_letters_are_counted_as_scheduled_and_parked(owner, offline_key, scrape):
    run = make_run(owner, offline_key, ["a", "b", "c"])
    a, b, c = run.blocks.order_by("block_index")
    now = timezone.now()
    common = {"run": run, "failing_function": "conveyor.runs.serve", "error_code": "api_error"}
    PipelineFailure.objects.create(block=a, next_retry_at=now, **common)
    PipelineFailure.objects.create(block=b, next_retry_at=None, **common)
    PipelineFailure.objects.create(block=c, resolved_at=now, **common)

    result = scrape()
    assert result.value("conveyor_dead_letters", state="scheduled") == 1
    assert result.value("conveyor_dead_letters", state="parked") == 1


def test_keys_are_counted_by_validity(owner, scrape):
    for label, validity in (("fine", True), ("refused", False), ("unchecked", None)):
        key = make_key(owner, label=label)
        ProviderKey.objects.filter(pk=key.pk).update(is_valid=validity)

    result = scrape()
    assert result.value("conveyor_keys", validity="valid") == 1
    assert result.value("conveyor_keys", validity="invalid") == 1
    assert result.value("conveyor_keys", validity="unknown") == 1


def test_pump_lag_is_the_time_since_the_pump_last_ran(scrape):
    with time_machine.travel(timezone.now() - timedelta(seconds=90), tick=False):
        heartbeat_record(PUMP)
    assert 89 <= scrape().value("conveyor_pump_lag_seconds") <= 120


def test_pump_lag_has_no_sample_before_the_pump_ever_ran(scrape):
    assert scrape().families["conveyor_pump_lag_seconds"].samples == []


def test_a_run_with_due_work_and_no_answer_for_ten_minutes_is_stalled(owner, offline_key, scrape):
    run = make_run(owner, offline_key, ["a", "b"], parallelism=1)
    claim = blocks_claim(run_id=run.pk, limit=1, worker="w")
    outcomes_record(run_id=run.pk, outcomes=[
        Outcome(block_id=claim.blocks[0].id, lease_token=claim.lease_token, attempt=1, output="done"),
    ])
    assert scrape().value("conveyor_runs_stalled") == 0

    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        assert scrape().value("conveyor_runs_stalled") == 1


def test_a_run_whose_remaining_blocks_wait_for_a_retry_is_not_stalled(owner, offline_key, scrape):
    run = make_run(owner, offline_key, ["a"])
    Run.objects.filter(pk=run.pk).update(status="running")
    run.blocks.update(next_attempt_at=timezone.now() + timedelta(hours=1))

    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        assert scrape().value("conveyor_runs_stalled") == 0


def test_a_throttled_lane_is_shown_by_key_id_and_group_with_its_rate(owner, offline_key, scrape):
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    group = limit_group(MODEL)
    now_ms = timezone.now().timestamp() * 1000
    client.hset(f"conveyor:lane:{offline_key.pk}:{group}",
                mapping={"until_throttled": now_ms + 30_000, "rate": 42, "rate_t": now_ms, "cwnd": 8})

    result = scrape()
    labels = {"key_id": str(offline_key.pk), "group": group}
    assert result.value("conveyor_lane_throttled", **labels) == 1
    assert result.value("conveyor_lane_overloaded", **labels) == 0
    assert result.value("conveyor_lane_rate_rpm", **labels) == pytest.approx(42, abs=1)
    assert result.value("conveyor_lane_window", **labels) == 8


def test_a_lanes_useful_concurrency_is_a_gauge(owner, offline_key, scrape):
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    group = limit_group(MODEL)
    client.hset(f"conveyor:lane:{offline_key.pk}:{group}", mapping={"cwnd": 1225, "useful": 1225})

    labels = {"key_id": str(offline_key.pk), "group": group}
    assert scrape().value("conveyor_lane_useful_concurrency", **labels) == 1225


def test_lanes_of_deleted_keys_are_not_shown(owner, offline_key, scrape):
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.hset(f"conveyor:lane:999999:{limit_group(MODEL)}", mapping={"rate": 5})
    assert scrape().labels("conveyor_lane_rate_rpm", "key_id") == set()


def test_with_redis_down_the_database_gauges_still_answer(owner, offline_key, scrape, monkeypatch):
    make_run(owner, offline_key, ["a"])

    def down():
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr("apps.metrics.collector.broker_redis", down)
    result = scrape()
    assert result.value("conveyor_metrics_source_up", source="redis") == 0
    assert result.value("conveyor_runs", status="queued") == 1


def test_a_lane_held_back_by_a_workers_ceiling_is_shown_while_it_binds(owner, offline_key, scrape):
    lane = LaneRef(key_id=offline_key.pk, group=limit_group(MODEL))
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.hset(lane.hash_key, mapping={"cwnd": 1000})
    expires_ms = int(timezone.now().timestamp() * 1000) + 5000
    client.hset(board_key(lane), mapping={
        "host-1:1": Post(worker="host-1:1", expires_ms=expires_ms, ceiling_bound=256,
                         bound_by="SERVE_MAX_IN_FLIGHT").encode()})
    labels = {"key_id": str(offline_key.pk), "group": lane.group}
    assert scrape().value("conveyor_lane_ceiling_bound", **labels) == 1

    client.hset(board_key(lane), mapping={
        "host-1:1": Post(worker="host-1:1", expires_ms=expires_ms - 60_000, ceiling_bound=256).encode()})
    assert scrape().value("conveyor_lane_ceiling_bound", **labels) == 0


def test_a_teams_limit_and_the_threshold_it_reached_are_gauges(scrape):
    from apps.teams.models import Team
    from tests.factories import make_team

    team = make_team("acme")
    Team.objects.filter(pk=team.pk).update(limit_usd=500, alert_level=80)
    result = scrape()
    assert result.value("conveyor_team_spend_alert_level", team="acme", member="") == 80
    assert result.value("conveyor_team_spend_limit_usd", team="acme", member="") == 500
