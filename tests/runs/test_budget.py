"""Budgets are a hard cap: each call reserves its worst case before it starts, the run pauses having
spent no more than its budget (and not far short of it), and a raised budget resumes it."""

from decimal import Decimal

import pytest

from apps.runs.estimates import block_reservation
from apps.runs.models import Block, PausedCause, Run
from apps.runs.services import blocks_claim
from apps.runs.services.lifecycle import run_set_budget
from tests.factories import make_run
from tests.runs.helpers import serve_until_settled

pytestmark = pytest.mark.django_db(transaction=True)

BUDGET = Decimal("0.004")  # about 33 of these blocks at the mock's usage


def budgeted(owner, key, *, blocks: int = 60, budget: Decimal = BUDGET, **options) -> Run:
    return make_run(owner, key, [f"essay number {i} about rivers" for i in range(blocks)],
                    max_tokens=200, parallelism=4, options={"max_cost_usd": str(budget), **options})


def worst_block(run: Run) -> Decimal:
    return block_reservation(run.call_spec, pack_size=run.pack_size).for_input("essay number 10 about rivers")


def test_a_run_pauses_on_its_budget_having_spent_no_more_than_it(owner, mock_key):
    run = serve_until_settled(budgeted(owner, mock_key))
    assert (run.status, run.paused_cause) == ("paused", PausedCause.BUDGET)
    assert run.cost_usd <= BUDGET
    # Not far short: it stopped only when the next block's worst case no longer fitted.
    assert run.cost_usd > BUDGET - worst_block(run)
    assert run.failed_blocks == 0
    assert run.blocks.filter(status="pending").exists()
    assert run.reserved_usd == 0


def test_raising_the_budget_resumes_the_run_to_the_end(owner, mock_key):
    run = serve_until_settled(budgeted(owner, mock_key, blocks=30))
    assert run.status == "paused"
    run_set_budget(run_id=run.pk, max_cost_usd=Decimal("1.00"))
    run = serve_until_settled(run)
    assert (run.status, run.completed_blocks) == ("complete", 30)
    assert run.cost_usd <= Decimal("1.00")


def test_a_claim_reserves_each_blocks_worst_case_and_takes_no_more_than_the_budget_allows(
        owner, offline_key):
    run = budgeted(owner, offline_key, budget=Decimal("0.0025"))
    claim = blocks_claim(run_id=run.pk, limit=10, worker="w")
    run.refresh_from_db()
    worst = worst_block(run)
    assert len(claim.blocks) == int(Decimal("0.0025") // worst)
    assert run.reserved_usd == sum(Block.objects.filter(run=run, status="claimed")
                                   .values_list("reserved_usd", flat=True))
    assert run.reserved_usd <= Decimal("0.0025")


def test_a_run_whose_next_block_cannot_fit_while_nothing_is_in_flight_pauses_with_its_blocks_pending(
        owner, offline_key):
    run = budgeted(owner, offline_key, budget=Decimal("0.0001"))
    claim = blocks_claim(run_id=run.pk, limit=4, worker="w")
    run.refresh_from_db()
    assert (claim.run_status, run.status, run.paused_cause) == ("paused", "paused", PausedCause.BUDGET)
    assert run.blocks.filter(status="pending").count() == 60


def test_while_calls_are_in_flight_a_claim_that_does_not_fit_waits_for_them(owner, offline_key):
    run = budgeted(owner, offline_key, budget=Decimal("0.0025"))
    blocks_claim(run_id=run.pk, limit=10, worker="w")
    claim = blocks_claim(run_id=run.pk, limit=10, worker="w")
    run.refresh_from_db()
    assert (claim.budget_wait, claim.blocks, run.status) == (True, [], "running")
