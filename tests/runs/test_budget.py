"""run_set_budget: the one operation behind the API's budget/, the admin's raise-budget action and
`manage.py runs budget`."""

from decimal import Decimal

import pytest

from apps.core.errors import InvalidInput
from apps.runs.models import PausedCause, Run, RunStatus
from apps.runs.services import RunStateError, run_resume, run_set_budget
from tests.api.helpers import set_status
from tests.factories import make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def spent_run(owner, offline_key) -> Run:
    """A run paused by the engine because it spent its $0.50 budget ($0.51 so far)."""
    run = make_run(owner, offline_key, ["one", "two"], options={"max_cost_usd": "0.5000"})
    return set_status(run, RunStatus.PAUSED, paused_cause=PausedCause.BUDGET,
                      paused_reason="budget of $0.5000 spent", cost_usd=Decimal("0.51"))


def test_a_new_budget_is_stored_in_the_runs_options(owner, offline_key):
    run = make_run(owner, offline_key, ["one"])
    run = run_set_budget(run_id=run.pk, max_cost_usd=Decimal("1.5"))
    assert run.options["max_cost_usd"] == "1.5000"


def test_none_removes_the_budget(owner, offline_key):
    run = make_run(owner, offline_key, ["one"], options={"max_cost_usd": "2"})
    run = run_set_budget(run_id=run.pk, max_cost_usd=None)
    assert "max_cost_usd" not in run.options


def test_raising_the_budget_above_the_spending_resumes_a_run_its_budget_paused(spent_run):
    run = run_set_budget(run_id=spent_run.pk, max_cost_usd=Decimal("1.00"))
    assert (run.status, run.paused_cause, run.paused_reason) == (RunStatus.RUNNING, "", "")


def test_removing_the_budget_resumes_a_run_its_budget_paused(spent_run):
    assert run_set_budget(run_id=spent_run.pk, max_cost_usd=None).status == RunStatus.RUNNING


def test_a_budget_not_above_the_spending_leaves_the_run_paused(spent_run):
    run = run_set_budget(run_id=spent_run.pk, max_cost_usd=Decimal("0.51"))
    assert (run.status, run.options["max_cost_usd"]) == (RunStatus.PAUSED, "0.5100")


def test_a_run_paused_for_another_cause_stays_paused(owner, offline_key):
    run = set_status(make_run(owner, offline_key, ["one"]), RunStatus.PAUSED,
                     paused_cause=PausedCause.KEY_REJECTED, paused_reason="401")
    assert run_set_budget(run_id=run.pk, max_cost_usd=Decimal("5")).status == RunStatus.PAUSED


def test_resuming_by_budget_wakes_a_worker_after_commit(spent_run, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        run_set_budget(run_id=spent_run.pk, max_cost_usd=Decimal("1"))
    assert len(callbacks) == 1


@pytest.mark.parametrize("value", [Decimal("0"), Decimal("-1"), Decimal("NaN"), "abc", Decimal("1e9")])
def test_a_budget_that_is_not_a_positive_amount_is_refused(owner, offline_key, value):
    run = make_run(owner, offline_key, ["one"])
    with pytest.raises(InvalidInput) as excinfo:
        run_set_budget(run_id=run.pk, max_cost_usd=value)
    assert excinfo.value.field == "max_cost_usd"
    run.refresh_from_db()
    assert "max_cost_usd" not in run.options


def test_resuming_a_run_whose_budget_is_still_spent_is_refused(spent_run):
    with pytest.raises(RunStateError, match="raise the budget"):
        run_resume(run_id=spent_run.pk)
    spent_run.refresh_from_db()
    assert spent_run.status == RunStatus.PAUSED
