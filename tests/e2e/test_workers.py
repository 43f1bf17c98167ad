import pytest
from django.db.models import Count

from apps.failures.models import PipelineFailure
from apps.runs.models import Attempt, Block
from apps.runs.services import run_cancel
from apps.runs.tasks import serve
from tests.e2e.conftest import run_status, wait_for
from tests.factories import make_run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def assert_counts_equal_states(run) -> None:
    run.refresh_from_db()
    states = dict(Block.objects.filter(run=run).values_list("status").annotate(n=Count("id")))
    assert states.get("pending", 0) == 0
    assert states.get("claimed", 0) == 0
    assert run.completed_blocks == states.get("succeeded", 0)
    assert run.failed_blocks == states.get("failed", 0)
    assert run.canceled_blocks == states.get("canceled", 0)
    assert run.completed_blocks + run.failed_blocks + run.canceled_blocks == run.total_blocks


def test_a_2000_block_run_on_two_workers_ends_with_every_block_terminal_and_exact_counts(
    owner, e2e_key, mock_process, stack
):
    mock_process.configure(fault_rates={"500": 0.03, "529": 0.02})
    stack.env["TEST_SERVE_PROCESSES_PER_HOST"] = "2"  # both workers serve (one host here)
    stack.worker("w1")
    stack.worker("w2")
    stack.beat()
    inputs = [f"essay {i}" for i in range(2000)]
    inputs[10] = "flaky essay [[mock:status=500 times=2]]"
    inputs[20] = "doomed essay [[mock:status=504]]"
    run = make_run(owner, e2e_key, inputs, parallelism=64, max_attempts=5)
    serve.delay()  # a second serving loop besides the one the submission woke

    wait_for(lambda: run_status(run) == "complete", timeout=240, what="run to complete",
             stack=stack)

    assert_counts_equal_states(run)
    assert run.completed_blocks + run.failed_blocks == 2000
    flaky, doomed = run.blocks.get(block_index=10), run.blocks.get(block_index=20)
    assert flaky.status == "succeeded" and flaky.attempts >= 3
    assert (doomed.status, doomed.attempts, doomed.error_code) == ("failed", 5, "timeout_error")
    assert PipelineFailure.objects.get(block=doomed).attempt_count == 5
    workers = set(Attempt.objects.filter(run=run).values_list("worker", flat=True))
    assert len(workers) >= 2  # both worker processes took part
    # Every call the provider answered is an attempt we recorded: nothing billed twice unseen.
    billed = mock_process.stats()["by_path"].get("/v1/messages", 0)
    assert Attempt.objects.filter(run=run).exclude(outcome="lease_expired").count() == billed


def test_cancellation_mid_run_stops_new_calls_and_ends_with_exact_counts(
    owner, e2e_key, mock_process, stack
):
    mock_process.configure(latency_ms=150)
    stack.worker("w1")
    stack.beat()
    run = make_run(owner, e2e_key, [f"essay {i}" for i in range(400)], parallelism=8)
    wait_for(lambda: run_status(run) == "running" and run.completed_blocks >= 16, timeout=60,
             what="some progress", stack=stack)

    run_cancel(run_id=run.pk)
    calls_at_cancel = mock_process.stats()["by_path"].get("/v1/messages", 0)
    wait_for(lambda: run_status(run) == "canceled", timeout=30, what="run to be canceled",
             stack=stack)

    # Canceled means no block is pending or claimed, so no worker can start another call.
    assert_counts_equal_states(run)
    assert run.canceled_blocks > 0
    # Only calls already in flight (at most the parallelism) finished after the cancel, and each is
    # an attempt on the run.
    calls = mock_process.stats()["by_path"]["/v1/messages"]
    assert calls - calls_at_cancel <= run.parallelism
    assert Attempt.objects.filter(run=run).count() == calls


def test_a_worker_killed_with_sigkill_mid_run_loses_nothing(owner, e2e_key, mock_process, stack):
    mock_process.configure(latency_ms=200)
    stack.worker("doomed", concurrency=1)
    stack.beat()
    run = make_run(owner, e2e_key, [f"essay {i}" for i in range(300)], parallelism=20)
    wait_for(lambda: Block.objects.filter(run=run, status="claimed").exists()
             and run_status(run) == "running" and run.completed_blocks > 20,
             timeout=60, what="the doomed worker to be mid-run", stack=stack)

    stack.kill("doomed")
    stack.worker("survivor")

    wait_for(lambda: run_status(run) == "complete", timeout=120, what="run to complete",
             stack=stack)
    assert_counts_equal_states(run)
    assert run.failed_blocks == 0
    assert Attempt.objects.filter(run=run, outcome="lease_expired").exists()


def test_losing_every_redis_message_mid_run_loses_nothing(
    owner, e2e_key, mock_process, stack, broker
):
    # ~12 s of work against 4 s drain slices: the run needs wake-ups sent after the flush.
    mock_process.configure(latency_ms=300)
    stack.worker("w1")
    stack.beat()
    run = make_run(owner, e2e_key, [f"essay {i}" for i in range(400)], parallelism=10)
    wait_for(lambda: run_status(run) == "running" and run.completed_blocks > 20, timeout=60,
             what="some progress", stack=stack)

    broker.flushdb()

    wait_for(lambda: run_status(run) == "complete", timeout=120, what="run to complete",
             stack=stack)
    assert_counts_equal_states(run)
    assert run.failed_blocks == 0
