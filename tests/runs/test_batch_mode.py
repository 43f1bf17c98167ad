"""Batch mode through the real SDK against the mock's Message Batches API: the same ledger as live
calls (fencing, attempts, counts, cost at batch prices, dead-letter rows), each batch submitted once."""

from decimal import Decimal

import pytest

from apps.failures.models import PipelineFailure
from apps.providers.usage import cost_usd
from apps.runs.batching.poll import batches_poll
from apps.runs.batching.submit import batches_submit
from apps.runs.models import Attempt, MessageBatch, RunMode
from apps.runs.services import run_cancel
from tests.factories import make_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def quick_batches(mock):
    mock.configure(batch_delay_ms=50)


def settle_batches(run, *, rounds: int = 20):
    """What beat does: submit due blocks, look at open batches, until the run ends or pauses."""
    for _ in range(rounds):
        batches_submit()
        mock_wait()
        batches_poll()
        run.refresh_from_db()
        if run.status in ("complete", "canceled", "paused"):
            break
    return run


def mock_wait() -> None:
    import time

    time.sleep(0.1)  # the mock answers a batch in batch_delay_ms of real time


def batch_run(owner, key, inputs, **options):
    options.setdefault("max_attempts", 2)
    return make_run(owner, key, inputs, mode=RunMode.BATCH, **options)


def test_a_batch_run_ends_with_every_block_answered_and_billed_at_half_price(owner, mock_key, mock):
    run = settle_batches(batch_run(owner, mock_key, [f"essay {i}" for i in range(12)]))
    assert (run.status, run.completed_blocks) == ("complete", 12)
    assert MessageBatch.objects.filter(run=run).count() == 1
    attempts = Attempt.objects.filter(run=run)
    assert attempts.count() == 12 and all(a.batch_id for a in attempts)
    live_price = sum(cost_usd(run.model, a_usage(a)) for a in attempts)
    assert run.cost_usd == run.batch_cost_usd == (live_price / 2).quantize(Decimal("0.00000001"))
    assert mock.stats()["by_path"].get("/v1/messages", 0) == 0  # no live call at all


def a_usage(attempt):
    from apps.providers.usage import TokenUsage

    return TokenUsage(input_tokens=attempt.input_tokens, output_tokens=attempt.output_tokens)


def test_an_errored_request_is_retried_in_the_next_batch(owner, mock_key):
    run = settle_batches(batch_run(owner, mock_key, ["fine", "flaky [[mock:status=500 times=1]]"]))
    assert (run.status, run.completed_blocks, run.failed_blocks) == ("complete", 2, 0)
    assert MessageBatch.objects.filter(run=run).count() == 2
    flaky = run.blocks.get(uid="b1")
    assert list(flaky.attempt_set.order_by("id").values_list("outcome", "error_code")) == [
        ("retry", "api_error"), ("succeeded", "")]


def test_a_request_that_can_never_succeed_fails_into_the_dead_letter_table(owner, mock_key):
    run = settle_batches(batch_run(owner, mock_key, ["fine", "bad [[mock:status=400]]"]))
    assert (run.status, run.failed_blocks) == ("complete", 1)
    assert PipelineFailure.objects.get(block__uid="b1").error_code == "invalid_request_error"


def test_an_expired_request_is_resubmitted_without_using_an_attempt(owner, mock_key, mock):
    mock.configure(batch_expire_after_s=1)  # a batch's requests expire after a second, not a day
    run = settle_batches(batch_run(owner, mock_key, ["fine", "late [[mock:expire times=1]]"],
                                   max_attempts=1), rounds=40)
    assert (run.status, run.completed_blocks) == ("complete", 2)
    late = run.blocks.get(uid="b1")
    assert (late.attempts, late.throttle_waits) == (1, 1)
    assert MessageBatch.objects.filter(run=run).count() == 2


def test_canceling_a_run_cancels_its_open_batch_and_its_blocks_end_canceled(owner, mock_key, mock):
    mock.configure(batch_delay_ms=5_000)  # the batch stays open while the run is canceled
    run = batch_run(owner, mock_key, [f"essay {i}" for i in range(5)])
    assert batches_submit() == 1

    run_cancel(run_id=run.pk)
    run = settle_batches(run, rounds=60)

    # The request the provider was answering when the cancel came may still be answered.
    assert run.status == "canceled"
    assert run.canceled_blocks >= 4 and run.canceled_blocks + run.completed_blocks == 5
    assert MessageBatch.objects.get(run=run).cancel_requested


def test_results_recorded_twice_count_once(owner, mock_key):
    from apps.runs.batching.poll import batch_record_results

    run = settle_batches(batch_run(owner, mock_key, [f"essay {i}" for i in range(4)]))
    batch = MessageBatch.objects.get(run=run)
    cost, attempts = run.cost_usd, Attempt.objects.filter(run=run).count()

    batch_record_results(batch)  # as after a crash half way through recording

    run.refresh_from_db()
    after = (run.completed_blocks, run.cost_usd, Attempt.objects.filter(run=run).count())
    assert after == (4, cost, attempts)


def test_a_submission_interrupted_before_its_id_was_recorded_is_found_again_not_resubmitted(
        owner, mock_key, mock, settings, monkeypatch):
    from apps.runs.batching import submit

    def killed(*args, **kwargs):  # the provider created the batch; the worker died before writing
        raise SystemExit("worker killed")

    run = batch_run(owner, mock_key, [f"essay {i}" for i in range(3)])
    monkeypatch.setattr(submit, "record_submitted", killed)
    with pytest.raises(SystemExit):
        batches_submit()
    monkeypatch.undo()
    assert MessageBatch.objects.get(run=run).status == "submitting"

    settings.CONVEYOR = {**settings.CONVEYOR, "BATCH_ADOPT_AFTER_SECONDS": 0}
    run = settle_batches(run)

    assert (run.status, run.completed_blocks) == ("complete", 3)
    assert mock.stats()["batches"]["created"] == 1  # adopted, never submitted again


def test_a_batch_refused_as_a_whole_pauses_the_run_instead_of_being_resubmitted(owner, mock_key, mock):
    mock.configure(batch_max_requests=2)  # the provider refuses a create of 5 requests with a 400
    run = settle_batches(batch_run(owner, mock_key, [f"essay {i}" for i in range(5)]))
    assert (run.status, run.paused_cause) == ("paused", "batch_refused")
    assert "refused the batch" in run.paused_reason
    assert run.blocks.filter(status="pending").count() == 5  # unharmed, waiting for a person
    batches_submit()
    assert mock.stats()["by_path"].get("/v1/messages/batches", 0) == 1  # not sent again


def test_a_key_the_provider_rejects_at_batch_submission_is_marked_invalid_and_its_run_paused(owner, mock):
    from tests.factories import make_key

    key = make_key(owner, base_url=mock.base_url, secret="sk-ant-revoked-0000", label="revoked")
    run = settle_batches(batch_run(owner, key, ["essay"]))
    assert (run.status, run.paused_cause) == ("paused", "key_rejected")
    key.refresh_from_db()
    assert key.is_valid is False and "authentication_error" in key.validation_error
    assert run.blocks.get().status == "pending"


def test_a_submission_the_provider_never_got_is_abandoned_and_its_blocks_go_back_to_work(
        owner, mock_key, mock, settings):
    from apps.runs.batching.submit import WORKER, _record_submitting
    from apps.runs.services import blocks_claim

    run = batch_run(owner, mock_key, ["a", "b"])
    claim = blocks_claim(run_id=run.pk, limit=2, worker=WORKER, batch=True)
    _record_submitting(run, claim.lease_token, 2, 2)  # the worker died before asking the provider
    settings.CONVEYOR = {**settings.CONVEYOR, "BATCH_ADOPT_AFTER_SECONDS": 0}

    assert batches_poll()["recovered"] == 1

    batch = MessageBatch.objects.get(run=run)
    assert (batch.status, batch.error) == ("abandoned", "the provider has no such batch: blocks given back")
    assert list(run.blocks.values_list("status", "attempts")) == [("pending", 0), ("pending", 0)]
    assert mock.stats()["batches"]["created"] == 0


BOOK = {"type": "object", "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
        "required": ["title", "year"], "additionalProperties": False}


def test_a_batch_run_with_a_schema_stores_each_answer_as_its_document(owner, mock_key):
    run = settle_batches(batch_run(owner, mock_key, [f"book {i}" for i in range(5)], output_schema=BOOK))
    assert (run.status, run.completed_blocks) == ("complete", 5)
    for document in run.blocks.values_list("output_json", flat=True):
        assert set(document) == {"title", "year"} and isinstance(document["year"], int)


def test_in_a_batch_an_answer_that_is_no_document_is_retried_with_output_invalid(owner, mock_key):
    inputs = ["fine", "declines once [[mock:refusal times=1]]", "cut once [[mock:max_tokens times=1]]"]
    run = settle_batches(batch_run(owner, mock_key, inputs, output_schema=BOOK))
    assert (run.status, run.completed_blocks) == ("complete", 3)
    retried = Attempt.objects.filter(run=run, outcome="retry").values_list("block__uid", "error_code")
    assert sorted(retried) == [("b1", "output_invalid"), ("b2", "output_invalid")]


FALLBACK = "claude-sonnet-4-6"


def test_a_batch_run_that_allows_it_moves_a_model_answering_404_on_to_its_fallback(owner, mock_key, mock):
    mock.configure(models_not_found=["claude-haiku-4-5"])
    run = settle_batches(batch_run(owner, mock_key, [f"essay {i}" for i in range(6)],
                                   fallback_models=[FALLBACK], options={"fallback_in_batch": True}))
    assert (run.status, run.completed_blocks, run.failed_blocks) == ("complete", 6, 0)
    answered = Attempt.objects.filter(run=run, outcome="succeeded")
    assert {a.model for a in answered} == {FALLBACK} and all(a.batch_id for a in answered)
    assert mock.stats()["by_path"].get("/v1/messages", 0) == 0  # still batches, never a live call


def test_a_batch_run_uses_its_primary_model_only_unless_told(owner, mock_key, mock):
    mock.configure(models_not_found=["claude-haiku-4-5"])
    run = settle_batches(batch_run(owner, mock_key, [f"essay {i}" for i in range(3)],
                                   fallback_models=[FALLBACK]))
    assert (run.completed_blocks, run.failed_blocks) == (0, 3)
    assert not Attempt.objects.filter(run=run, model=FALLBACK).exists()
