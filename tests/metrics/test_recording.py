"""Counters recorded by the workers: in memory as calls end and results are written, then one Redis
write per flush, summed across processes and read back by the scrape."""

import logging
from decimal import Decimal

import pytest
import redis
from django.conf import settings
from django.db.models import Sum

from apps.counters import families
from apps.counters.recording import (
    BUFFER,
    metrics_flush,
    record_block_finished,
    record_call,
    record_usage,
)
from apps.providers.errors import FailureKind, ProviderFailure
from apps.providers.usage import TokenUsage
from apps.runs.models import Attempt
from apps.runs.services import blocks_claim, outcomes_record
from apps.runs.services.decisions import Outcome
from tests.factories import MODEL, make_run
from tests.runs.helpers import serve_until_settled

pytestmark = pytest.mark.django_db


def overloaded() -> ProviderFailure:
    return ProviderFailure(FailureKind.OVERLOADED, "overloaded_error", "busy", http_status=529)


def test_calls_are_counted_by_model_status_and_error_type(scrape):
    record_call(model=MODEL, failure=None, latency_seconds=0.3)
    record_call(model=MODEL, failure=None, latency_seconds=0.3)
    record_call(model=MODEL, failure=overloaded(), latency_seconds=0.1)
    metrics_flush()

    result = scrape()
    assert result.value("conveyor_provider_calls_total", model=MODEL, http_status="200",
                        error_type="none") == 2
    assert result.value("conveyor_provider_calls_total", model=MODEL, http_status="529",
                        error_type="overloaded") == 1


def test_429s_and_529s_are_counted_as_refusals(scrape):
    record_call(model=MODEL, failure=overloaded(), latency_seconds=0.1)
    record_call(model=MODEL, failure=ProviderFailure(FailureKind.THROTTLED, "rate_limit_error", "slow",
                                                     http_status=429), latency_seconds=0.1)
    record_call(model=MODEL, failure=ProviderFailure(FailureKind.RETRYABLE, "api_error", "oops",
                                                     http_status=500), latency_seconds=0.1)
    metrics_flush()

    result = scrape()
    assert result.value("conveyor_provider_refusals_total", http_status="529") == 1
    assert result.value("conveyor_provider_refusals_total", http_status="429") == 1
    assert result.value("conveyor_provider_refusals_total") == 2


def test_call_latency_lands_in_cumulative_buckets(scrape):
    for seconds in (0.05, 0.3, 0.3, 7.0, 999.0):
        record_call(model=MODEL, failure=None, latency_seconds=seconds)
    metrics_flush()

    result = scrape()
    name = "conveyor_provider_call_duration_seconds"
    assert result.value(name + "_bucket", model=MODEL, le="0.1") == 1
    assert result.value(name + "_bucket", model=MODEL, le="0.5") == 3
    assert result.value(name + "_bucket", model=MODEL, le="10.0") == 4
    assert result.value(name + "_bucket", model=MODEL, le="+Inf") == 5
    assert result.value(name + "_count", model=MODEL) == 5
    assert result.value(name + "_sum", model=MODEL) == pytest.approx(1006.65)


def test_tokens_are_counted_by_kind_and_cost_by_model(scrape):
    usage = TokenUsage(input_tokens=100, output_tokens=20, cache_creation_input_tokens=300,
                       cache_read_input_tokens=4000)
    record_usage(model=MODEL, usage=usage, cost=Decimal("0.0125"))
    record_usage(model=MODEL, usage=usage, cost=Decimal("0.0125"))
    metrics_flush()

    result = scrape()
    assert {kind: result.value("conveyor_tokens_total", model=MODEL, kind=kind)
            for kind in families.TOKEN_KINDS} == {"input": 200, "output": 40, "cache_write": 600,
                                                  "cache_read": 8000}
    assert result.value("conveyor_cost_usd_total", model=MODEL) == pytest.approx(0.025)


def test_label_values_stay_bounded(scrape):
    record_call(model="some-model-not-in-the-catalog", failure=None, latency_seconds=None)
    record_block_finished(status="failed", error_code="KeyErrorFromSomewhere")
    record_block_finished(status="failed", error_code="http_418")
    metrics_flush()

    result = scrape()
    assert result.labels("conveyor_provider_calls_total", "model") == {"other"}
    assert result.labels("conveyor_blocks_finished_total", "error_code") == {"other", "http_418"}


def test_counts_of_several_processes_add_up(scrape):
    record_block_finished(status="succeeded")
    metrics_flush()
    # Another process's flush: the same hash field, incremented again.
    record_block_finished(status="succeeded", n=2)
    metrics_flush()
    assert scrape().value("conveyor_blocks_finished_total", status="succeeded") == 3


def test_a_flush_is_one_round_trip(monkeypatch):
    record_call(model=MODEL, failure=None, latency_seconds=0.2)
    record_block_finished(status="succeeded")
    record_usage(model=MODEL, usage=TokenUsage(input_tokens=5), cost=Decimal("0.001"))
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    executes = []
    real = client.pipeline

    def pipeline(*args, **kwargs):
        pipe = real(*args, **kwargs)
        original = pipe.execute
        pipe.execute = lambda *a, **k: executes.append(1) or original(*a, **k)
        return pipe

    monkeypatch.setattr(client, "pipeline", pipeline)
    monkeypatch.setattr(client, "hincrby", lambda *a: pytest.fail("a write outside the pipeline"))
    metrics_flush(client)
    assert executes == [1]
    assert client.hlen(families.REDIS_KEY) >= 5


def test_with_redis_down_a_flush_is_logged_once_and_the_counts_wait(caplog, scrape):
    broken = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    record_block_finished(status="succeeded")
    with caplog.at_level(logging.WARNING, logger="apps.counters.recording"):
        metrics_flush(broken)
        record_block_finished(status="succeeded")
        metrics_flush(broken)
    assert len([r for r in caplog.records if "could not write counts" in r.message]) == 1

    metrics_flush()  # Redis is back: nothing was lost
    assert scrape().value("conveyor_blocks_finished_total", status="succeeded") == 2


def test_recording_errors_never_reach_the_caller(monkeypatch, caplog):
    monkeypatch.setattr(BUFFER, "add", lambda *a, **k: 1 / 0)
    record_call(model=MODEL, failure=None, latency_seconds=0.1)  # does not raise
    assert "record_call failed" in caplog.text


def test_written_results_count_blocks_finished_by_status_and_error_code(owner, offline_key, scrape):
    run = make_run(owner, offline_key, ["a", "b", "c"], parallelism=3, max_attempts=1)
    claim = blocks_claim(run_id=run.pk, limit=3, worker="w")
    a, b, c = claim.blocks
    fatal = ProviderFailure(FailureKind.BLOCK_FATAL, "invalid_request_error", "bad", http_status=400)
    retry = ProviderFailure(FailureKind.RETRYABLE, "api_error", "oops", http_status=500)
    outcomes_record(run_id=run.pk, outcomes=[
        Outcome(block_id=a.id, lease_token=claim.lease_token, attempt=1, output="ok"),
        Outcome(block_id=b.id, lease_token=claim.lease_token, attempt=1, failure=fatal),
        Outcome(block_id=c.id, lease_token=claim.lease_token, attempt=1, failure=retry),
    ])
    metrics_flush()

    result = scrape()
    assert result.value("conveyor_blocks_finished_total", status="succeeded", error_code="none") == 1
    assert result.value("conveyor_blocks_finished_total", status="failed",
                        error_code="invalid_request_error") == 1
    # c had one attempt: its retryable error ends it too
    assert result.value("conveyor_blocks_finished_total", status="failed", error_code="api_error") == 1


def test_a_block_sent_back_to_wait_is_not_finished(owner, offline_key, scrape):
    run = make_run(owner, offline_key, ["a"], max_attempts=3)
    claim = blocks_claim(run_id=run.pk, limit=1, worker="w")
    retry = ProviderFailure(FailureKind.RETRYABLE, "api_error", "oops", http_status=500)
    outcomes_record(run_id=run.pk, outcomes=[
        Outcome(block_id=claim.blocks[0].id, lease_token=claim.lease_token, attempt=1, failure=retry),
    ])
    metrics_flush()
    assert scrape().value("conveyor_blocks_finished_total") == 0


# The serving loop writes from its own database thread: these two need committed rows.
@pytest.mark.django_db(transaction=True)
def test_a_run_served_against_the_mock_moves_the_counters(owner, mock_key, scrape):
    inputs = [f"essay {i}" for i in range(6)]
    inputs[1] = "essay 1 [[mock:status=500 times=1]]"
    inputs[2] = "essay 2 [[mock:status=529 times=1]]"
    run = serve_until_settled(make_run(owner, mock_key, inputs, parallelism=4))
    assert run.status == "complete"

    result = scrape()
    assert result.value("conveyor_blocks_finished_total", status="succeeded") == 6
    assert result.value("conveyor_provider_calls_total", http_status="200") == 6
    assert result.value("conveyor_provider_calls_total", http_status="500", error_type="retryable") == 1
    assert result.value("conveyor_provider_refusals_total", http_status="529") == 1
    assert result.value("conveyor_provider_call_duration_seconds_count", model=MODEL) == 8
    totals = Attempt.objects.filter(run=run).aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
    assert result.value("conveyor_tokens_total", kind="input") == totals["i"]
    assert result.value("conveyor_tokens_total", kind="output") == totals["o"]
    assert result.value("conveyor_cost_usd_total") == pytest.approx(float(run.cost_usd))


@pytest.mark.django_db(transaction=True)
def test_packs_and_splits_are_counted(owner, mock_key, scrape):
    inputs = [f"item {i}" for i in range(8)]
    inputs[5] = "item 5 [[mock:drop_uid times=1]]"
    run = serve_until_settled(make_run(owner, mock_key, inputs, options={"pack_size": 4}, max_tokens=2000))
    assert run.status == "complete"

    result = scrape()
    assert result.value("conveyor_packs_total", model=MODEL) == run.initial_pack_count == 2
    assert result.value("conveyor_pack_splits_total", model=MODEL) == run.split_events >= 1
