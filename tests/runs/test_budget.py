"""Budgets are a hard cap: each call reserves its worst case before it starts, the run pauses having
spent no more than its budget (and not far short of it), and a raised budget resumes it."""

import re
from decimal import Decimal

import pytest
from django.db.models import Sum

from apps.runs.estimates import block_reservation, call_reservation
from apps.runs.models import Attempt, Block, PausedCause, Run
from apps.runs.services import SubmissionError, blocks_claim
from apps.runs.services.budget import budget_reserve_call, usd_at_least
from apps.runs.services.lifecycle import RunStateError, run_resume, run_set_budget
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


def spend(run: Run, cost: str) -> Run:
    """As if the run's calls so far had cost `cost`."""
    Run.objects.filter(pk=run.pk).update(cost_usd=Decimal(cost))
    run.refresh_from_db()
    return run


def paused_by_budget(owner, key, *, cost: str = "0.0035") -> Run:
    run = spend(budgeted(owner, key), cost)
    blocks_claim(run_id=run.pk, limit=4, worker="w")
    run.refresh_from_db()
    return run


def test_a_run_whose_next_block_cannot_fit_while_nothing_is_in_flight_pauses_with_its_blocks_pending(
        owner, offline_key):
    run = paused_by_budget(owner, offline_key)
    assert (run.status, run.paused_cause) == ("paused", PausedCause.BUDGET)
    assert run.blocks.filter(status="pending").count() == 60


def test_a_run_paused_by_its_budget_says_what_the_next_block_could_cost_and_what_is_left(
        owner, offline_key):
    run = paused_by_budget(owner, offline_key)
    worst = usd_at_least(worst_block(run))
    assert run.paused_reason == (f"paused: the next block could cost up to {worst} and $0.000500 is left "
                                 "of its budget of $0.004")


def test_a_run_with_nothing_left_says_so_in_dollars(owner, offline_key):
    run = paused_by_budget(owner, offline_key, cost="0.004")
    assert "and $0.00 is left" in run.paused_reason
    assert "E-" not in run.paused_reason and "reached" not in run.paused_reason


@pytest.mark.parametrize(("amount", "shown"), [
    (Decimal("0E-8"), "$0.00"), (Decimal("0.00123"), "$0.0013"), (Decimal("0.05"), "$0.05"),
    (Decimal("1234.5"), "$1,234.50"), (Decimal("0.00000001"), "$0.0001"),
])
def test_a_budget_to_set_is_shown_rounded_up_to_what_a_budget_holds(amount, shown):
    assert usd_at_least(amount) == shown


def test_resuming_a_run_its_budget_paused_says_what_to_raise_the_budget_to(owner, offline_key):
    run = paused_by_budget(owner, offline_key)
    with pytest.raises(RunStateError) as refused:
        run_resume(run_id=run.pk)
    message = str(refused.value)
    assert message.startswith("cannot resume: its next block could cost up to ")
    minimum = re.search(r"raise the budget to at least \$([0-9.]+)", message).group(1)
    run.refresh_from_db()
    assert run.status == "paused"
    run = run_set_budget(run_id=run.pk, max_cost_usd=Decimal(minimum))
    assert run.status == "running"


def test_a_raised_budget_that_still_cannot_pay_for_the_next_block_leaves_the_run_paused_saying_so(
        owner, offline_key):
    run = paused_by_budget(owner, offline_key)
    run = run_set_budget(run_id=run.pk, max_cost_usd=Decimal("0.0036"))
    assert run.status == "paused"
    assert run.paused_reason.endswith("is left of its budget of $0.0036")


def test_a_budget_below_one_block_is_refused_at_create_naming_the_smallest_that_works(
        owner, offline_key):
    with pytest.raises(SubmissionError) as refused:
        budgeted(owner, offline_key, budget=Decimal("0.0001"))
    assert refused.value.field == "options.max_cost_usd"
    minimum = re.search(r"set a budget of at least \$([0-9.]+)$", str(refused.value)).group(1)
    assert Run.objects.count() == 0
    assert budgeted(owner, offline_key, budget=Decimal(minimum)).status == "queued"


def test_while_calls_are_in_flight_a_claim_that_does_not_fit_waits_for_them(owner, offline_key):
    run = budgeted(owner, offline_key, budget=Decimal("0.0025"))
    blocks_claim(run_id=run.pk, limit=10, worker="w")
    claim = blocks_claim(run_id=run.pk, limit=10, worker="w")
    run.refresh_from_db()
    assert (claim.budget_wait, claim.blocks, run.status) == (True, [], "running")


# --- every call reserved, including a split's ------------------------------------------------------

SPLIT_BUDGET = Decimal("0.05")


def unparseable_packs(owner, key, *, pack_size: int, blocks: int = 160) -> Run:
    """Blocks whose packs always come back as no JSON (the mock's `malformed`): every pack splits down
    to single blocks, which answer well. Packed 8 a call, that is 15 calls for 8 blocks, each sending
    the long rubric: the claim's reservation of the 8 (one call each) is far short of it."""
    return make_run(owner, key, [f"essay number {i} about rivers [[mock:malformed]]" for i in range(blocks)],
                    system_prompt="Grade the essay with care, line by line. " * 300, max_tokens=64,
                    parallelism=16,
                    options={"max_cost_usd": str(SPLIT_BUDGET), "pack_size": pack_size})


def test_a_run_whose_packs_always_split_spends_no_more_than_its_budget(owner, mock_key):
    run = serve_until_settled(unparseable_packs(owner, mock_key, pack_size=8), rounds=20)
    assert (run.status, run.paused_cause) == ("paused", PausedCause.BUDGET)
    assert run.split_events > 0
    assert run.cost_usd <= SPLIT_BUDGET
    assert run.cost_usd == Attempt.objects.filter(run=run).aggregate(c=Sum("cost_usd"))["c"]
    assert run.reserved_usd == 0


def test_the_same_run_one_block_a_call_spends_no_more_than_its_budget(owner, mock_key):
    run = serve_until_settled(unparseable_packs(owner, mock_key, pack_size=1, blocks=400), rounds=20)
    assert (run.status, run.paused_cause) == ("paused", PausedCause.BUDGET)
    assert run.cost_usd <= SPLIT_BUDGET
    assert run.reserved_usd == 0


def test_a_split_call_the_budget_cannot_hold_is_not_made_and_its_blocks_wait(owner, mock_key):
    run = serve_until_settled(unparseable_packs(owner, mock_key, pack_size=8), rounds=20)
    waited = Attempt.objects.filter(run=run, outcome="budget_wait")
    assert waited.exists()
    assert not run.blocks.filter(status="failed").exists()
    assert set(run.blocks.filter(pk__in=waited.values("block")).values_list("status", flat=True)) <= {
        "pending", "succeeded"}


def test_a_split_call_reserves_only_what_its_blocks_do_not_already_hold(owner, offline_key):
    run = budgeted(owner, offline_key, budget=Decimal("1"), pack_size=8)
    claim = blocks_claim(run_id=run.pk, limit=8, worker="w")
    half = claim.blocks[:4]
    held = sum(b.reserved_usd for b in half)
    assert budget_reserve_call(run_id=run.pk, token=claim.lease_token, blocks=half,
                               spent_usd=Decimal(0)) == half  # its claim holds enough
    topped = budget_reserve_call(run_id=run.pk, token=claim.lease_token, blocks=half, spent_usd=held)
    added = sum(b.reserved_usd for b in topped) - held
    assert added >= call_reservation(run.call_spec, [b.input for b in half])
    before = sum(b.reserved_usd for b in claim.blocks)
    run.refresh_from_db()
    assert run.reserved_usd == before + added == sum(
        Block.objects.filter(run=run).values_list("reserved_usd", flat=True))


def test_a_split_call_the_budget_cannot_hold_reserves_nothing(owner, offline_key):
    run = budgeted(owner, offline_key, budget=Decimal("0.0025"), pack_size=2)
    claim = blocks_claim(run_id=run.pk, limit=2, worker="w")
    run.refresh_from_db()
    reserved = run.reserved_usd
    assert budget_reserve_call(run_id=run.pk, token=claim.lease_token, blocks=claim.blocks[:1],
                               spent_usd=reserved) is None
    run.refresh_from_db()
    assert run.reserved_usd == reserved
