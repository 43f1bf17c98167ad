"""The counters move when a run goes through a real Celery worker (its own process, talking to the
mock provider in another), and what the web process scrapes matches what the provider saw."""

from collections import Counter

import pytest

from tests.e2e.conftest import run_status, wait_for
from tests.factories import MODEL, make_run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_run_through_a_real_worker_moves_the_counters(owner, e2e_key, mock_process, stack, scrape):
    mock_process.configure(latency_ms=30)
    stack.worker("w1")
    stack.beat()
    assert scrape().value("conveyor_provider_calls_total") == 0

    inputs = [f"essay {i}" for i in range(20)]
    for i in (3, 7, 11):
        inputs[i] += " [[mock:status=500 times=1]]"
    for i in (5, 13):
        inputs[i] += " [[mock:status=529 times=1]]"
    run = make_run(owner, e2e_key, inputs, parallelism=8)
    wait_for(lambda: run_status(run) == "complete", timeout=120, what="run to complete", stack=stack)
    # The counts reach Redis in the same database hop as the last write, just after its commit.
    wait_for(lambda: scrape().value("conveyor_blocks_finished_total") == 20, timeout=20,
             what="the blocks finished counted", stack=stack)

    result = scrape()
    run.refresh_from_db()
    seen = Counter(r["status"] for r in mock_process.requests())
    assert (seen[200], seen[500], seen[529]) == (20, 3, 2), seen
    assert result.value("conveyor_blocks_finished_total", status="succeeded") == run.completed_blocks
    for status in (200, 500, 529):
        assert result.value("conveyor_provider_calls_total", model=MODEL,
                            http_status=str(status)) == seen[status]
    assert result.value("conveyor_provider_calls_total", http_status="500",
                        error_type="retryable") == seen[500]
    assert result.value("conveyor_provider_refusals_total", http_status="529") == seen[529]
    assert result.value("conveyor_provider_call_duration_seconds_count", model=MODEL) == sum(seen.values())
    assert result.value("conveyor_provider_call_duration_seconds_bucket", model=MODEL,
                        le="+Inf") == sum(seen.values())
    assert result.value("conveyor_tokens_total", model=MODEL, kind="input") == run.input_tokens > 0
    assert result.value("conveyor_tokens_total", model=MODEL, kind="output") == run.output_tokens > 0
    assert result.value("conveyor_cost_usd_total", model=MODEL) == pytest.approx(float(run.cost_usd))
    # and the gauges: nothing open any more, the pump ticking
    assert result.value("conveyor_runs", status="complete") == 1
    assert result.value("conveyor_blocks", status="pending") == 0
    assert result.value("conveyor_pump_lag_seconds") < 30
