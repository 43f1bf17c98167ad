"""The drain against the mock provider over HTTP, through the real SDK, in this process."""

from decimal import Decimal

import pytest
from django.db.models import Sum

from apps.failures.models import DiagnosticLog, PipelineFailure
from apps.runs.models import Attempt
from tests.factories import SECRET, make_run
from tests.runs.helpers import serve_until_settled

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_run_completes_with_every_output_usage_and_cost_recorded(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, [f"essay number {i}" for i in range(20)]))
    assert (run.status, run.completed_blocks, run.failed_blocks) == ("complete", 20, 0)
    assert run.blocks.filter(output__isnull=True).count() == 0
    assert run.finished_at is not None
    totals = Attempt.objects.filter(run=run).aggregate(i=Sum("input_tokens"), c=Sum("cost_usd"))
    assert run.input_tokens == totals["i"] > 0
    assert run.cost_usd == totals["c"] > Decimal(0)


def test_the_same_input_gives_the_same_output(owner, mock_key):
    a = serve_until_settled(make_run(owner, mock_key, ["the same text"]))
    b = serve_until_settled(make_run(owner, mock_key, ["the same text"]))
    assert a.blocks.get().output == b.blocks.get().output


def test_a_retryable_error_is_retried_then_succeeds(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, ["flaky [[mock:status=500 times=2]]"]))
    block = run.blocks.get()
    assert (block.status, block.attempts) == ("succeeded", 3)
    assert list(block.attempt_set.order_by("id").values_list("outcome", flat=True)) == [
        "retry", "retry", "succeeded"
    ]
    assert DiagnosticLog.objects.filter(event_code="PIPELINE_RETRY", block=block).count() == 2


def test_retry_exhaustion_fails_the_block_into_pipeline_failures(owner, mock_key):
    run = serve_until_settled(
        make_run(owner, mock_key, ["ok", "broken [[mock:status=500]]"], max_attempts=3)
    )
    assert (run.status, run.completed_blocks, run.failed_blocks) == ("complete", 1, 1)
    failure = PipelineFailure.objects.get()
    assert failure.block.uid == "b1"
    assert (failure.error_code, failure.http_status, failure.attempt_count) == ("api_error", 500, 3)
    # The run ended with it: parked, replayed only when a person asks (a new pass).
    assert failure.next_retry_at is None
    assert SECRET not in str(failure.payload_snapshot) + failure.error_message + str(failure.context)
    assert DiagnosticLog.objects.filter(event_code="DOWNSTREAM_CALL_FAILED", block=failure.block).exists()


def test_a_block_that_gave_up_after_one_attempt_says_attempt_not_attempts(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, ["broken [[mock:status=500]]"], max_attempts=1))
    assert run.blocks.get().error_message.startswith("gave up after 1 attempt: ")


def test_an_invalid_request_fails_the_block_at_once_and_is_parked(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, ["bad [[mock:status=400]]"]))
    block = run.blocks.get()
    assert (block.status, block.attempts, block.error_code) == ("failed", 1, "invalid_request_error")
    assert PipelineFailure.objects.get().next_retry_at is None


def test_a_401_pauses_the_run_and_marks_the_key_invalid_without_burning_blocks(owner, mock_key):
    run = serve_until_settled(
        make_run(owner, mock_key, ["rejected [[mock:status=401]]"] + [f"x{i}" for i in range(5)],
                 parallelism=1)
    )
    mock_key.refresh_from_db()
    assert run.status == "paused"
    assert "authentication_error" in run.paused_reason
    assert mock_key.is_valid is False
    assert run.blocks.get(uid="b0").attempts == 0
    assert run.failed_blocks == 0


def test_throttling_waits_without_using_the_blocks_attempts(owner, mock_key):
    run = serve_until_settled(
        make_run(owner, mock_key, ["busy [[mock:status=529 times=3]]"], max_attempts=1)
    )
    block = run.blocks.get()
    assert (block.status, block.attempts, block.throttle_waits) == ("succeeded", 1, 3)


def test_a_429_with_retry_after_holds_every_call_on_the_key_until_then(owner, mock_key):
    inputs = ["slow down [[mock:status=429 retry_after=1 times=1]]"] + [f"x{i}" for i in range(6)]
    run = serve_until_settled(make_run(owner, mock_key, inputs, parallelism=1))
    assert run.status == "complete"
    # The engine's own records: no call started until the Retry-After after the refused one was over.
    throttled = Attempt.objects.get(run=run, outcome="throttled")
    later = Attempt.objects.filter(run=run, started_at__gt=throttled.started_at)
    assert later.count() == 7
    assert all((a.started_at - throttled.started_at).total_seconds() >= 1.0 for a in later)


def test_a_reply_cut_at_max_tokens_fails_the_block_with_a_clear_code(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, ["long [[mock:max_tokens]]"], max_attempts=1))
    block = run.blocks.get()
    assert (block.status, block.error_code) == ("failed", "max_tokens")
    assert run.cost_usd > 0  # the truncated call was billed and is on the run


def test_a_spent_budget_pauses_the_run(owner, mock_key):
    run = serve_until_settled(
        make_run(owner, mock_key, [f"x{i}" for i in range(30)], parallelism=2,
                 options={"max_cost_usd": "0.008"})
    )
    assert run.status == "paused"
    assert "budget" in run.paused_reason
    assert run.completed_blocks < 30


def test_packed_calls_split_a_mismapped_pack_and_every_block_succeeds(owner, mock_key, mock):
    inputs = [f"item {i}" for i in range(8)]
    inputs[5] = "item 5 [[mock:drop_uid times=1]]"
    run = serve_until_settled(
        make_run(owner, mock_key, inputs, options={"pack_size": 4}, max_tokens=2000)
    )
    assert (run.status, run.completed_blocks) == ("complete", 8)
    assert len(mock.requests()) > 2  # two packs, and at least one split
    assert Attempt.objects.filter(run=run).aggregate(c=Sum("cost_usd"))["c"] == run.cost_usd


def test_packed_outputs_match_unpacked_outputs(owner, mock_key):
    inputs = [f"essay {i} about rivers" for i in range(6)]
    single = serve_until_settled(make_run(owner, mock_key, inputs))
    packed = serve_until_settled(make_run(owner, mock_key, inputs, options={"pack_size": 3}))
    assert list(single.blocks.values_list("output", flat=True)) == list(
        packed.blocks.values_list("output", flat=True)
    )


def test_a_broken_stream_falls_back_to_a_plain_call(owner, mock_key):
    run = serve_until_settled(
        make_run(owner, mock_key, ["stream me [[mock:stream_error times=1]]"], options={"stream": True},
                 max_attempts=1)
    )
    assert run.blocks.get().status == "succeeded"


def test_a_cacheable_run_writes_its_prefix_once_then_reads_it(owner, mock_key):
    rubric = "Grade with care. " * 1200  # about 5,000 tokens: above Haiku 4.5's 4,096 minimum
    run = serve_until_settled(make_run(owner, mock_key, [f"essay {i}" for i in range(16)], parallelism=16,
                                       system_prompt=rubric, options={"cache": True}))
    assert run.status == "complete" and run.cache_warmed
    writes = Attempt.objects.filter(run=run, cache_creation_input_tokens__gt=0).count()
    reads = Attempt.objects.filter(run=run, cache_read_input_tokens__gt=0).count()
    assert (writes, reads) == (1, 15)


def test_a_packs_cost_goes_to_its_blocks_by_their_own_size_and_adds_up_to_the_call(owner, mock_key):
    inputs = ["short", "a much, much longer essay " * 40, "mid-sized essay " * 5, "x"]
    run = serve_until_settled(make_run(owner, mock_key, inputs, options={"pack_size": 4}, max_tokens=4000))
    blocks = {b.uid: b for b in run.blocks.all()}
    assert blocks["b1"].input_tokens > blocks["b2"].input_tokens > blocks["b0"].input_tokens
    assert sum(b.cost_usd for b in blocks.values()) == run.cost_usd
    assert (run.initial_pack_count, run.packs_processed, run.split_events, run.avg_blocks_per_pack) == (
        1, 1, 0, 4.0)
