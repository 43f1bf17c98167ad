"""The scheduler with real workers: lanes shared by every process, learned from the provider's
headers, slowed (not stopped) by overload; fair share across owners; budgets as a hard cap."""

from decimal import Decimal

import pytest
import redis
from django.conf import settings
from django.db.models import Min

from apps.lanes.selectors import lane_state
from apps.runs.models import Attempt, PausedCause
from apps.runs.services.lifecycle import run_set_budget
from apps.runs.tasks import serve
from tests.e2e.conftest import run_status, wait_for
from tests.e2e.test_workers import assert_counts_equal_states
from tests.factories import make_key, make_run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_two_serving_processes_on_one_key_stay_within_its_limits_together(
        owner, e2e_key, mock_process, stack):
    # 600 requests a minute: the mock lets a full minute's burst through (its buckets hold one
    # second's worth unless told otherwise), the lanes pace at ten a second from the first headers.
    mock_process.configure(rpm=600, latency_ms=50, burst_seconds=60)
    stack.env["TEST_SERVE_PROCESSES_PER_HOST"] = "2"
    stack.worker("w1")
    stack.worker("w2")
    stack.beat()
    run = make_run(owner, e2e_key, [f"essay {i}" for i in range(150)], parallelism=32)
    serve.delay()  # a second serving loop besides the one the submission woke

    wait_for(lambda: run_status(run) == "complete", timeout=120, what="run to complete", stack=stack)

    assert_counts_equal_states(run)
    log = mock_process.requests()
    assert [r for r in log if r["status"] == 429] == []
    outcomes = list(Attempt.objects.filter(run=run).values_list("outcome", "error_code", "accepted"))
    assert len(log) == 150, (sorted({r["status"] for r in log}), [o for o in outcomes if o[0] != "succeeded"])
    assert Attempt.objects.filter(run=run).values("worker").distinct().count() >= 2
    # What the lane knows came from the provider's headers (the key says nothing of its limits).
    lane = lane_state(key=e2e_key, model=run.model)
    assert (lane.limits_source, lane.rpm_limit) == ("headers", 600)


def lane_window(key, model: str) -> float:
    return lane_state(key=key, model=model).window


def test_a_burst_of_529s_slows_the_lane_without_stopping_it(owner, e2e_key, mock_process, stack):
    mock_process.configure(latency_ms=50, fault_rates={"529": 1.0})
    stack.worker("w1")
    stack.beat()
    run = make_run(owner, e2e_key, [f"essay {i}" for i in range(200)], parallelism=32, max_attempts=1)

    # Every call overloaded: the lane cuts its window to a single call, and keeps trying.
    wait_for(lambda: lane_window(e2e_key, run.model) <= 1, timeout=60, what="the lane's window cut",
             stack=stack)
    overloaded = mock_process.stats()["by_status"]["529"]
    wait_for(lambda: mock_process.stats()["by_status"]["529"] > overloaded, timeout=60,
             what="the lane to go on probing", stack=stack)
    mock_process.configure(fault_rates={})
    wait_for(lambda: run_status(run) == "complete", timeout=120, what="run to complete", stack=stack)

    assert_counts_equal_states(run)
    # Not one block failed or used an attempt for the overload (max_attempts=1 would show it).
    assert run.completed_blocks == 200
    assert lane_window(e2e_key, run.model) > 1  # and the window grew back


def test_six_runs_of_three_owners_on_one_worker_are_served_side_by_side(owner, outsider, staff,
                                                                       mock_process, stack):
    mock_process.configure(latency_ms=100)
    stack.env["TEST_SERVE_MAX_IN_FLIGHT"] = "24"  # capacity short: 6 runs x 16 want 96 slots
    stack.worker("w1", concurrency=2)
    stack.beat()
    runs = []
    for user in (owner, outsider, staff):
        key = make_key(user, base_url=mock_process.base_url, label=f"key-{user.username}")
        runs.append(make_run(user, key, [f"big {i}" for i in range(160)], parallelism=16))
        runs.append(make_run(user, key, [f"small {i}" for i in range(16)], parallelism=16))

    wait_for(lambda: all(run_status(r) == "complete" for r in runs), timeout=180, what="all runs",
             stack=stack)

    big, small = runs[0::2], runs[1::2]
    first_call = {r.pk: Attempt.objects.filter(run=r).aggregate(t=Min("started_at"))["t"] for r in runs}
    first_big_done = min(r.finished_at for r in big)
    # Nobody waited for another's run to end before its own first call...
    assert all(first_call[r.pk] < first_big_done for r in runs)
    # ...and every small run was done while the big ones were still going.
    assert max(r.finished_at for r in small) < first_big_done
    # The owners shared the worker about equally while all of them had work.
    served = [Attempt.objects.filter(run__owner=u, started_at__lt=first_big_done).count()
              for u in (owner, outsider, staff)]
    assert min(served) >= 0.6 * max(served), served


def test_a_budget_pauses_the_run_within_it_and_raising_it_resumes(owner, e2e_key, mock_process, stack):
    stack.worker("w1")
    stack.beat()
    budget = Decimal("0.004")
    run = make_run(owner, e2e_key, [f"essay number {i} about rivers" for i in range(80)], max_tokens=200,
                   parallelism=8, options={"max_cost_usd": str(budget)})

    wait_for(lambda: run_status(run) == "paused", timeout=60, what="the budget pause", stack=stack)
    assert run.paused_cause == PausedCause.BUDGET
    assert run.cost_usd <= budget
    assert run.failed_blocks == 0

    run_set_budget(run_id=run.pk, max_cost_usd=Decimal("1"))
    wait_for(lambda: run_status(run) == "complete", timeout=60, what="run to complete", stack=stack)
    assert run.completed_blocks == 80


@pytest.fixture(autouse=True)
def fresh_lanes() -> None:
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
