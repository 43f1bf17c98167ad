"""`manage.py runs ACTION`: every action on an existing run, through the same services as the API."""

import io
import json
import logging
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from apps.runs.models import PausedCause, Run, RunStatus
from tests.api.helpers import complete, finish_block, set_status
from tests.factories import make_run

pytestmark = pytest.mark.django_db


def runs(*args: str) -> str:
    out = io.StringIO()
    call_command("runs", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def run(owner, offline_key) -> Run:
    return make_run(owner, offline_key, ["one", "two", "three"], name="three blocks")


@pytest.fixture
def ended_run(run) -> Run:
    finish_block(run, "b0", "succeeded", output="ok", cost="0.01")
    finish_block(run, "b1", "failed", error_code="invalid_request_error", error_message="bad input")
    finish_block(run, "b2", "succeeded", output="ok")
    return complete(run)


def test_list_shows_each_run_with_its_status_and_progress(run):
    text = runs("list")
    assert str(run.pk) in text
    assert "queued" in text and "0/3" in text and "three blocks" in text


def test_list_filters_by_status_and_refuses_an_unknown_one(run):
    assert str(run.pk) not in runs("list", "--status", "complete")
    with pytest.raises(CommandError, match="--status"):
        runs("list", "--status", "finished")


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_list_refuses_a_limit_below_one(run, limit):
    with pytest.raises(CommandError, match=f"--limit: must be at least 1, not {limit}"):
        runs("list", "--limit", limit)


def test_list_says_when_every_block_of_a_complete_run_failed(run):
    for uid in ("b0", "b1", "b2"):
        finish_block(run, uid, "failed", error_code="invalid_request_error")
    complete(run)
    line = next(line for line in runs("list").splitlines() if str(run.pk) in line)
    assert "complete, all failed" in line


def test_list_of_a_user_without_runs_says_how_to_submit_one(run, outsider):
    assert "submit one with" in runs("list", "--user", "outsider")


def test_show_says_what_the_run_did_and_where_its_failures_are(ended_run):
    text = runs("show", str(ended_run.pk))
    assert f"run {ended_run.pk}: complete" in text
    assert "2 succeeded, 1 failed" in text
    assert "1 invalid_request_error" in text
    assert f"uv run python manage.py export {ended_run.pk} > results.jsonl" in text


def test_show_lists_the_failures_below_instead_of_sending_the_reader_to_itself(ended_run):
    text = runs("show", str(ended_run.pk))
    assert f"runs show {ended_run.pk}" not in text
    assert "1 invalid_request_error: the most recent below" in text


def test_show_says_why_a_paused_run_is_not_moving(run):
    set_status(run, RunStatus.PAUSED, paused_cause=PausedCause.BUDGET, paused_reason="budget of $1 spent")
    assert "paused: The run's budget is spent; budget of $1 spent" in runs("show", str(run.pk))


def test_an_unknown_run_is_a_clear_error():
    with pytest.raises(CommandError, match="no run nope; list them with"):
        runs("show", "nope")


def test_cancel_cancels_the_pending_blocks(run):
    assert "now canceled" in runs("cancel", str(run.pk))
    run.refresh_from_db()
    assert run.canceled_blocks == 3


@pytest.mark.django_db(transaction=True)  # the run's end is announced (and logged) after commit
def test_cancel_says_what_it_did_without_the_engines_log_lines(run, caplog):
    caplog.clear()
    assert "now canceled" in runs("cancel", str(run.pk))
    assert [r.getMessage() for r in caplog.records if r.levelno < logging.WARNING] == []


@pytest.mark.django_db(transaction=True)
def test_the_engines_log_lines_show_with_verbosity_2(run, caplog):
    call_command("runs", "-v", "2", "cancel", str(run.pk), stdout=io.StringIO())
    assert any("ended: canceled" in r.getMessage() for r in caplog.records)


def test_canceling_an_ended_run_is_refused_with_the_reason(ended_run):
    with pytest.raises(CommandError, match="a complete run cannot be canceled"):
        runs("cancel", str(ended_run.pk))


def test_resume_resumes_a_paused_run(run):
    set_status(run, RunStatus.PAUSED, paused_cause=PausedCause.KEY_BLOCKED, paused_reason="402")
    assert "now running" in runs("resume", str(run.pk))


def test_reseed_starts_a_new_pass_over_the_failed_blocks(ended_run):
    assert "pass 2 started" in runs("reseed", str(ended_run.pk), "--scope", "failed")
    ended_run.refresh_from_db()
    assert (ended_run.current_pass, ended_run.status, ended_run.failed_blocks) == (2, "running", 0)


def test_reseed_options_are_checked_like_the_apis(ended_run):
    with pytest.raises(CommandError, match=r"--scope \(scope\)"):
        runs("reseed", str(ended_run.pk), "--scope", "everything")


def test_export_writes_one_result_per_line_to_a_file(ended_run, tmp_path):
    target = tmp_path / "results.jsonl"
    runs("export", str(ended_run.pk), "--output", str(target))
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [(r["uid"], r["status"]) for r in rows] == [("b0", "succeeded"), ("b1", "failed"),
                                                       ("b2", "succeeded")]


def test_budget_raises_the_budget_and_resumes_a_run_it_paused(run):
    set_status(run, RunStatus.PAUSED, paused_cause=PausedCause.BUDGET, paused_reason="spent",
               cost_usd=Decimal("0.6"))
    text = runs("budget", str(run.pk), "--max-cost-usd", "1.50")
    assert "budget $1.50" in text and "now running" in text
    run.refresh_from_db()
    assert run.options["max_cost_usd"] == "1.5000"


def test_budget_that_is_not_a_number_is_refused_naming_the_option(run):
    with pytest.raises(CommandError, match=r"--max-cost-usd \(max_cost_usd\)"):
        runs("budget", str(run.pk), "--max-cost-usd", "abc")


def test_budget_can_be_removed(run, owner, offline_key):
    priced = make_run(owner, offline_key, ["x"], options={"max_cost_usd": "1"})
    assert "budget removed" in runs("budget", str(priced.pk), "--no-budget")


def test_follow_of_a_settled_run_prints_its_summary(ended_run):
    assert f"run {ended_run.pk}: complete" in runs("follow", str(ended_run.pk))


def test_resume_of_a_run_its_budget_paused_says_why_not_and_what_to_raise_the_budget_to(owner, offline_key):
    run = make_run(owner, offline_key, ["x"], options={"max_cost_usd": "0.01"})
    set_status(run, RunStatus.PAUSED, paused_cause=PausedCause.BUDGET, paused_reason="paused",
               cost_usd=Decimal("0.0099"))
    with pytest.raises(CommandError, match=r"cannot resume: .* raise the budget to at least \$0\.01"):
        runs("resume", str(run.pk))
