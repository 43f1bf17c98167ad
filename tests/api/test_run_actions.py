"""POST /api/v1/runs/{id}/cancel/, resume/ and reseed/: the owner (or staff) acts through the run
services; an outsider gets a 404 and changes nothing; a run in the wrong state is a 409."""

from decimal import Decimal

import pytest

from apps.runs.models import Block, BlockStatus, PausedCause, Run, RunStatus
from tests.api.helpers import complete, error_of, finish_block, set_status

URL = "/api/v1/runs/"


# --- cancel ----------------------------------------------------------------------------------------

def test_the_owner_cancels_their_run(owner, run, api):
    response = api(owner).post(f"{URL}{run.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert response.json()["counts"]["canceled"] == 3


def test_canceling_cancels_the_pending_blocks(owner, run, api):
    api(owner).post(f"{URL}{run.pk}/cancel/")
    assert set(Block.objects.filter(run=run).values_list("status", flat=True)) == {BlockStatus.CANCELED}


def test_staff_cancel_any_run(staff, run, api):
    assert api(staff).post(f"{URL}{run.pk}/cancel/").status_code == 200
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED


def test_canceling_a_finished_run_is_a_409_in_the_error_shape(owner, run, api):
    complete(run)
    response = api(owner).post(f"{URL}{run.pk}/cancel/")
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "conflict"
    assert "complete run cannot be canceled" in error["message"]


def test_cancel_is_only_a_post(owner, run, api):
    response = api(owner).get(f"{URL}{run.pk}/cancel/")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


# --- resume ----------------------------------------------------------------------------------------

def test_the_owner_resumes_a_paused_run(owner, run, api):
    set_status(run, RunStatus.PAUSED, paused_reason="budget spent")
    body = api(owner).post(f"{URL}{run.pk}/resume/").json()
    assert (body["status"], body["paused_reason"]) == ("running", "")


def test_resuming_schedules_a_drain_after_commit(owner, run, api, django_capture_on_commit_callbacks):
    set_status(run, RunStatus.PAUSED)
    with django_capture_on_commit_callbacks() as callbacks:
        api(owner).post(f"{URL}{run.pk}/resume/")
    assert len(callbacks) == 1


def test_staff_resume_any_run(staff, run, api):
    set_status(run, RunStatus.PAUSED)
    assert api(staff).post(f"{URL}{run.pk}/resume/").json()["status"] == "running"


def test_resuming_a_run_that_is_not_paused_is_a_409(owner, run, api):
    response = api(owner).post(f"{URL}{run.pk}/resume/")
    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"


# --- reseed ----------------------------------------------------------------------------------------

@pytest.fixture
def ended(run) -> Run:
    """A complete run: b0 succeeded, b1 and b2 failed (b2 with a different error)."""
    finish_block(run, "b0", BlockStatus.SUCCEEDED, output="fine")
    finish_block(run, "b1", BlockStatus.FAILED, error_code="invalid_request")
    finish_block(run, "b2", BlockStatus.FAILED, error_code="overloaded")
    return complete(run)


def pending(run: Run) -> list[str]:
    return sorted(Block.objects.filter(run=run, status=BlockStatus.PENDING).values_list("uid", flat=True))


def test_reseeding_the_failed_blocks_starts_a_new_pass_over_them(owner, ended, api):
    response = api(owner).post(f"{URL}{ended.pk}/reseed/", {"scope": "failed"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["current_pass"]) == ("running", 2)
    assert body["counts"] == {"total": 3, "succeeded": 1, "failed": 0, "canceled": 0, "remaining": 2}
    assert pending(ended) == ["b1", "b2"]


def test_reseeding_all_blocks_takes_every_block_back(owner, ended, api):
    api(owner).post(f"{URL}{ended.pk}/reseed/", {"scope": "all"}, format="json")
    assert pending(ended) == ["b0", "b1", "b2"]


def test_reseeding_by_filter_takes_only_the_matching_blocks(owner, ended, api):
    api(owner).post(f"{URL}{ended.pk}/reseed/", {"scope": "filter", "error_code": "overloaded"},
                    format="json")
    assert pending(ended) == ["b2"]


def test_a_reseed_can_change_the_model(owner, ended, api):
    body = api(owner).post(f"{URL}{ended.pk}/reseed/",
                           {"scope": "failed", "model": "claude-sonnet-4-6"}, format="json").json()
    assert body["model"] == "claude-sonnet-4-6"


def test_a_reseed_with_a_new_prompt_changes_the_prompt_version(owner, ended, api):
    body = api(owner).post(f"{URL}{ended.pk}/reseed/",
                           {"scope": "all", "prompt_template": "Again: {input}"}, format="json").json()
    assert body["prompt_template"] == "Again: {input}"
    assert body["prompt_version"] != ended.prompt_version


def test_staff_reseed_any_run(staff, ended, api):
    response = api(staff).post(f"{URL}{ended.pk}/reseed/", {"scope": "failed"}, format="json")
    assert response.status_code == 200


def test_reseeding_a_running_run_is_a_409_and_changes_nothing(owner, run, api):
    set_status(run, RunStatus.RUNNING)
    response = api(owner).post(f"{URL}{run.pk}/reseed/", {"scope": "all"}, format="json")
    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"
    run.refresh_from_db()
    assert run.current_pass == 1


@pytest.mark.parametrize(("body", "field"), [
    ({}, "scope"),
    ({"scope": "some"}, "scope"),
    ({"scope": "filter"}, "scope"),
    ({"scope": "failed", "error_code": "overloaded"}, "error_code"),
    ({"scope": "filter", "status": "sleeping"}, "status"),
    ({"scope": "filter", "prompt_version": "no-such-version"}, "prompt_version"),
    ({"scope": "all", "model": "gpt-4o"}, "model"),
    ({"scope": "all", "prompt_template": "no placeholder"}, "prompt_template"),
    ({"scope": "all", "error_code": "e" * 65}, "error_code"),
])
def test_a_bad_reseed_is_a_400_naming_the_field_and_changes_nothing(owner, ended, api, body, field):
    response = api(owner).post(f"{URL}{ended.pk}/reseed/", body, format="json")
    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    ended.refresh_from_db()
    assert (ended.current_pass, ended.status) == (1, RunStatus.COMPLETE)


def test_a_reseeded_runs_passes_stay_readable(owner, ended, api):
    client = api(owner)
    client.post(f"{URL}{ended.pk}/reseed/", {"scope": "filter", "status": "failed",
                                             "model": "claude-sonnet-4-6"}, format="json")
    passes = client.get(f"{URL}{ended.pk}/").json()["passes"]
    assert [(p["number"], p["scope"], p["model"], p["selected_blocks"]) for p in passes] == [
        (1, "initial", "claude-haiku-4-5", 3), (2, "filter", "claude-sonnet-4-6", 2)]
    assert passes[1]["filter"] == {"status": ["failed"]}
    assert passes[1]["prior_failed_blocks"] == 2


def test_a_run_never_reseeded_lists_its_submission_as_pass_one(owner, run, api):
    passes = api(owner).get(f"{URL}{run.pk}/").json()["passes"]
    assert [(p["number"], p["scope"], p["finished_at"]) for p in passes] == [(1, "initial", None)]


# --- budget ----------------------------------------------------------------------------------------

def test_the_owner_raises_the_budget_of_a_run_its_budget_paused(owner, run, api):
    set_status(run, RunStatus.PAUSED, paused_cause=PausedCause.BUDGET, paused_reason="budget spent")
    response = api(owner).post(f"{URL}{run.pk}/budget/", {"max_cost_usd": "1.50"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["options"]["max_cost_usd"]) == ("running", "1.5000")


def test_a_paused_run_says_its_paused_cause(owner, run, api):
    set_status(run, RunStatus.PAUSED, paused_cause=PausedCause.BUDGET, paused_reason="budget spent")
    body = api(owner).get(f"{URL}{run.pk}/").json()
    assert (body["paused_cause"], body["paused_reason"]) == ("budget", "budget spent")


def test_a_null_budget_removes_it(owner, run, api):
    body = api(owner).post(f"{URL}{run.pk}/budget/", {"max_cost_usd": None}, format="json").json()
    assert body["options"]["max_cost_usd"] is None


@pytest.mark.parametrize("body", [{"max_cost_usd": "abc"}, {"max_cost_usd": "0"}, {},
                                  {"max_cost_usd": "1", "colour": "red"}])
def test_a_bad_budget_is_a_400_naming_the_field(owner, run, api, body):
    response = api(owner).post(f"{URL}{run.pk}/budget/", body, format="json")
    assert response.status_code == 400
    assert set(error_of(response)["fields"]) & {"max_cost_usd", "colour"}


def test_an_outsider_cannot_change_a_runs_budget(outsider, run, api):
    response = api(outsider).post(f"{URL}{run.pk}/budget/", {"max_cost_usd": "9"}, format="json")
    assert response.status_code == 404
    run.refresh_from_db()
    assert "max_cost_usd" not in run.options


def test_resuming_a_run_its_budget_paused_is_a_409_saying_what_to_raise_the_budget_to(owner, run, api):
    Run.objects.filter(pk=run.pk).update(options={**run.options, "max_cost_usd": "0.01"})
    set_status(run, RunStatus.PAUSED, paused_cause=PausedCause.BUDGET, paused_reason="paused",
               cost_usd=Decimal("0.0099"))
    response = api(owner).post(f"{URL}{run.pk}/resume/")
    assert response.status_code == 409
    assert "cannot resume: its next block could cost up to $" in error_of(response)["message"]
    assert "raise the budget to at least $" in error_of(response)["message"]
