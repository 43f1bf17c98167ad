"""Reseeding: a new pass over an ended run (all blocks, the failed ones, or a filter), with exact counts
and a readable history. (Lives here with replay, its sibling way of re-running work.)"""

import pytest

from apps.failures.models import PipelineFailure
from apps.providers.prompts import prompt_version
from apps.runs.models import Attempt, RunPass
from apps.runs.services import RunStateError, SubmissionError, blocks_claim, run_cancel
from apps.runs.services.reseed import run_reseed
from tests.factories import make_run
from tests.failures.helpers import counts, settle
from tests.runs.helpers import serve_until_settled


@pytest.fixture
def ended_run(owner, offline_key):
    """Three blocks: b0 and b1 succeeded, b2 failed for good."""
    run = make_run(owner, offline_key, ["a", "b", "c"], max_attempts=1)
    return settle(run, fail={"b2"})


@pytest.mark.django_db
def test_reseeding_failed_blocks_takes_back_only_those_and_reopens_the_run(ended_run):
    run = run_reseed(run_id=ended_run.pk, scope="failed")

    assert (run.status, run.current_pass, run.finished_at) == ("running", 2, None)
    assert counts(run) == ("running", 2, 0, 0)
    assert sorted(run.blocks.filter(status="pending").values_list("uid", flat=True)) == ["b2"]


@pytest.mark.django_db
def test_a_reseeded_block_gets_a_fresh_attempt_budget_and_keeps_no_error(ended_run):
    run_reseed(run_id=ended_run.pk, scope="failed")

    block = ended_run.blocks.get(uid="b2")
    assert (block.attempts, block.throttle_waits, block.next_attempt_at) == (0, 0, None)
    assert (block.error_code, block.error_message, block.finished_at) == ("", "", None)


@pytest.mark.django_db
def test_reseeding_all_blocks_takes_every_count_back(ended_run):
    run = run_reseed(run_id=ended_run.pk, scope="all")

    assert counts(run) == ("running", 0, 0, 0)
    assert run.blocks.filter(status="pending").count() == 3


@pytest.mark.django_db
def test_a_reseeded_block_keeps_its_output_until_the_new_pass_overwrites_it(ended_run):
    run_reseed(run_id=ended_run.pk, scope="all")

    assert ended_run.blocks.get(uid="b0").output == "output of b0"


@pytest.mark.django_db
def test_a_reseed_filter_on_status_and_error_code_selects_exactly_the_matching_blocks(ended_run):
    run = run_reseed(run_id=ended_run.pk, scope="filter", status=["failed", "succeeded"],
                     error_code="api_error")

    assert list(run.blocks.filter(status="pending").values_list("uid", flat=True)) == ["b2"]
    assert counts(run) == ("running", 2, 0, 0)


@pytest.mark.django_db
def test_a_reseed_filter_on_an_old_prompt_version_takes_back_only_what_it_produced(ended_run):
    old_version = ended_run.prompt_version
    run = run_reseed(run_id=ended_run.pk, scope="failed", system_prompt="Be brief.")
    settle(run)  # pass 2: b2 succeeds with the new prompt
    assert counts(run) == ("complete", 3, 0, 0)

    run = run_reseed(run_id=run.pk, scope="filter", prompt_version=old_version)

    assert sorted(run.blocks.filter(status="pending").values_list("uid", flat=True)) == ["b0", "b1"]
    assert counts(run) == ("running", 1, 0, 0)


@pytest.mark.django_db
def test_a_reseed_with_a_new_model_and_prompt_restamps_the_run(ended_run):
    run = run_reseed(run_id=ended_run.pk, scope="all", model="claude-sonnet-4-6",
                     system_prompt="Be brief.", prompt_template="Summarise: {input}")

    assert (run.model, run.system_prompt, run.prompt_template) == (
        "claude-sonnet-4-6", "Be brief.", "Summarise: {input}")
    assert run.prompt_version == prompt_version("Be brief.", "Summarise: {input}")


@pytest.mark.django_db
def test_each_pass_is_recorded_with_the_counts_at_the_end_of_the_previous_one(ended_run):
    original_version = ended_run.prompt_version
    run_reseed(run_id=ended_run.pk, scope="filter", status="failed", model="claude-sonnet-4-6")

    passes = list(RunPass.objects.filter(run=ended_run).values_list(
        "number", "scope", "filter", "model", "prompt_version", "selected_blocks",
        "prior_completed_blocks", "prior_failed_blocks", "prior_canceled_blocks"))
    assert passes == [
        (1, "initial", {}, "claude-haiku-4-5", original_version, 3, 0, 0, 0),
        (2, "filter", {"status": ["failed"]}, "claude-sonnet-4-6", original_version, 1, 2, 1, 0),
    ]


@pytest.mark.django_db
def test_reseeding_a_canceled_run_takes_its_canceled_blocks_back(owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b"])
    run_cancel(run_id=run.pk)

    run = run_reseed(run_id=run.pk, scope="all")

    assert counts(run) == ("running", 0, 0, 0)
    assert run.blocks.filter(status="pending").count() == 2


@pytest.mark.django_db
def test_a_reseed_takes_the_blocks_dead_letter_rows_off_the_replay_schedule(ended_run):
    run_reseed(run_id=ended_run.pk, scope="failed")

    failure = PipelineFailure.objects.get()
    assert (failure.resolved_at, failure.next_retry_at) == (None, None)


@pytest.mark.django_db
def test_a_reseeded_block_that_succeeds_resolves_its_failure(ended_run):
    run = run_reseed(run_id=ended_run.pk, scope="failed")
    settle(run)

    assert PipelineFailure.objects.get().resolved_at is not None
    assert counts(run) == ("complete", 3, 0, 0)


# --- refusals -----------------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("status", ["queued", "running"])
def test_a_run_in_progress_cannot_be_reseeded(owner, offline_key, status):
    run = make_run(owner, offline_key, ["a", "b"], parallelism=1)
    if status == "running":
        blocks_claim(run_id=run.pk, limit=1, worker="w")

    with pytest.raises(RunStateError, match=status):
        run_reseed(run_id=run.pk, scope="all")
    assert counts(run) == (status, 0, 0, 0)
    assert list(run.passes.values_list("number", flat=True)) == [1]  # only the submission's


@pytest.mark.django_db
def test_a_reseed_that_selects_no_block_is_refused_naming_the_filter(ended_run):
    with pytest.raises(SubmissionError, match="error_code='rate_limit_error'") as error:
        run_reseed(run_id=ended_run.pk, scope="filter", error_code="rate_limit_error")
    assert error.value.field == "error_code"
    assert counts(ended_run) == ("complete", 2, 1, 0)


@pytest.mark.django_db
def test_a_reseed_with_an_unknown_model_is_refused_naming_the_field(ended_run):
    with pytest.raises(SubmissionError) as error:
        run_reseed(run_id=ended_run.pk, scope="all", model="gpt-5")
    assert error.value.field == "model"
    assert ended_run.blocks.filter(status="pending").count() == 0


@pytest.mark.django_db
def test_a_reseed_prompt_template_without_the_input_placeholder_is_refused(ended_run):
    with pytest.raises(SubmissionError) as error:
        run_reseed(run_id=ended_run.pk, scope="all", prompt_template="no placeholder")
    assert error.value.field == "prompt_template"


@pytest.mark.django_db
@pytest.mark.parametrize(("kwargs", "field"), [
    ({"scope": "everything"}, "scope"),
    ({"scope": "filter"}, "scope"),
    ({"scope": "filter", "status": ["done"]}, "status"),
    ({"scope": "failed", "error_code": "api_error"}, "error_code"),
], ids=["unknown-scope", "filter-without-criteria", "unknown-status", "criteria-without-filter-scope"])
def test_bad_reseed_options_are_refused_naming_the_field(ended_run, kwargs, field):
    with pytest.raises(SubmissionError) as error:
        run_reseed(run_id=ended_run.pk, **kwargs)
    assert error.value.field == field


# --- with the real engine: the history stays readable --------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_earlier_passes_outputs_stay_readable_after_a_reseed_with_another_model(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, ["the first essay", "the second essay"]))
    first_outputs = dict(run.blocks.values_list("uid", "output"))

    run = serve_until_settled(run_reseed(run_id=run.pk, scope="all", model="claude-sonnet-4-6"))

    assert counts(run) == ("complete", 2, 0, 0)
    accepted = Attempt.objects.filter(run=run, outcome="succeeded", accepted=True)
    assert dict(accepted.filter(pass_number=1).values_list("block__uid", "output")) == first_outputs
    # An output is stored once: the current result on the block only, not again on its attempt.
    current = dict(accepted.filter(pass_number=2).values_list("block__uid", "output"))
    assert current == {"b0": None, "b1": None}
    assert all(run.blocks.values_list("output", flat=True))
    assert set(run.blocks.values_list("pass_number", "model")) == {(2, "claude-sonnet-4-6")}


@pytest.mark.django_db(transaction=True)
def test_a_reseed_of_failed_blocks_completes_the_run_with_exact_counts(owner, mock_key):
    run = serve_until_settled(
        make_run(owner, mock_key, ["fine", "flaky [[mock:status=500 times=1]]"], max_attempts=1)
    )
    assert counts(run) == ("complete", 1, 1, 0)

    run = serve_until_settled(run_reseed(run_id=run.pk, scope="failed"))

    assert counts(run) == ("complete", 2, 0, 0)
    assert PipelineFailure.objects.get().resolved_at is not None
