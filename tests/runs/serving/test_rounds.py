"""A database round's decisions, without the database: what to claim, what claimed blocks become,
what a refresh keeps."""

import pytest

from apps.runs.services.outcomes import RecordReport
from apps.runs.serving import rounds
from apps.runs.serving.rounds import ClaimRequest, RoundResult, RoundWork
from apps.runs.serving.slots import HeldWrite, LaneSlot
from tests.runs.serving.cast import claim, context, demand, slot, state_with


@pytest.fixture(autouse=True)
def knobs(settings):
    settings.CONVEYOR = {**settings.CONVEYOR, "SERVE_CLAIM_AHEAD": 0.5, "LEASE_MARGIN_SECONDS": 4.0,
                         "SERVE_WRITE_BATCH_SECONDS": 0.25}


def test_a_run_alone_claims_its_parallelism_plus_half_ahead():
    state = state_with(slot("r", parallelism=10))
    [request] = rounds.claims_wanted(state, now=0.0)
    assert (request.limit, request.ahead) == (15, 5)
    assert state.slots["r"].claim_pending


def test_claims_come_in_whole_packs():
    state = state_with(slot("r", parallelism=10, pack_size=4))
    [request] = rounds.claims_wanted(state, now=0.0)
    assert request.limit % 4 == 0 and request.limit >= 15


def test_two_owners_share_the_ceiling_equally_when_it_is_short():
    state = state_with(slot("a", owner_id=1, parallelism=100), slot("b", owner_id=2, parallelism=100),
                       ceiling=20)
    limits = {r.run_id: r.limit for r in rounds.claims_wanted(state, now=0.0)}
    assert limits == {"a": 15, "b": 15}


def test_what_a_run_holds_is_not_claimed_again():
    state = state_with(slot("r", parallelism=10, ready=12))
    [request] = rounds.claims_wanted(state, now=0.0)
    assert request.limit == 3


def test_results_held_unwritten_are_passed_to_the_claim_as_answered():
    state = state_with(slot("r", parallelism=10, unwritten=4))
    [request] = rounds.claims_wanted(state, now=0.0)
    assert request.answered == 4


@pytest.mark.parametrize("waiting", ["exhausted", "budget_wait", "claim_pending", "ended"])
def test_a_run_that_waits_on_something_is_not_claimed_for(waiting):
    state = state_with(slot("r", **{waiting: True}))
    assert rounds.claims_wanted(state, now=0.0) == []


def test_a_run_whose_lane_is_shut_for_long_is_not_claimed_for():
    state = state_with(slot("r"))
    state.lanes[state.slots["r"].ctx.lane.name] = LaneSlot(closed_until=10.0, reason="throttled")
    assert rounds.claims_wanted(state, now=0.0) == []
    assert len(rounds.claims_wanted(state, now=9.0)) == 1


def test_claimed_blocks_become_packs_to_start_within_half_the_lease_margin():
    state = state_with(slot("r", pack_size=2))
    rounds.take_claim(state, ClaimRequest("r", limit=4, ahead=2, answered=0), claim(4), now=100.0)
    packs = list(state.slots["r"].ready)
    assert [p.size for p in packs] == [2, 2]
    assert {p.start_by for p in packs} == {102.0}


def test_a_claim_short_of_what_was_asked_means_the_run_has_no_more_due_blocks():
    state = state_with(slot("r"))
    rounds.take_claim(state, ClaimRequest("r", limit=5, ahead=1, answered=0), claim(3), now=0.0)
    assert state.slots["r"].exhausted


def test_a_claim_cut_short_by_the_runs_parallelism_leaves_the_run_with_work():
    # The run still wants blocks (and says so on its lanes' boards); it claims again next round.
    state = state_with(slot("r"))
    rounds.take_claim(state, ClaimRequest("r", limit=5, ahead=1, answered=0), claim(3, at_parallelism=True),
                      now=0.0)
    assert not state.slots["r"].exhausted
    assert len(rounds.claims_wanted(state, now=0.0)) == 1


def test_a_run_at_its_parallelism_waits_a_moment_before_claiming_again():
    state = state_with(slot("r"))
    rounds.take_claim(state, ClaimRequest("r", limit=5, ahead=1, answered=0), claim(0, at_parallelism=True),
                      now=10.0)
    assert not state.slots["r"].exhausted
    assert rounds.claims_wanted(state, now=10.0) == []
    assert len(rounds.claims_wanted(state, now=10.0 + rounds.CLAIM_RECHECK_SECONDS)) == 1


def test_a_claim_with_no_room_in_the_budget_waits_instead_of_calling_the_run_exhausted():
    state = state_with(slot("r"))
    rounds.take_claim(state, ClaimRequest("r", limit=5, ahead=1, answered=0), claim(0, budget_wait=True),
                      now=0.0)
    assert state.slots["r"].budget_wait and not state.slots["r"].exhausted


def test_blocks_claimed_while_the_loop_stops_go_back_at_once():
    state = state_with(slot("r"))
    state.stopping = True
    rounds.take_claim(state, ClaimRequest("r", limit=3, ahead=1, answered=0), claim(3), now=0.0)
    assert not state.slots["r"].ready
    assert sum(len(r.block_ids) for r in state.releases) == 3


def test_a_claim_that_finds_the_run_paused_ends_its_slot():
    state = state_with(slot("r", ready=2))
    rounds.take_claim(state, ClaimRequest("r", limit=3, ahead=1, answered=0), claim(0, status="paused"),
                      now=0.0)
    assert state.slots["r"].ended
    assert sum(len(r.block_ids) for r in state.releases) == 2


def test_a_written_run_that_ended_is_let_go_and_its_unwritten_count_falls():
    run = slot("r", ready=1, unwritten=2)
    state = state_with(run)
    work = RoundWork(writes={"r": HeldWrite(ctx=run.ctx, outcomes=[object(), object()])})
    result = RoundResult(reports={"r": RecordReport(run_status="complete", written=2)})
    assert rounds.apply_result(state, work, result, now=0.0) == 2
    assert run.unwritten == 0 and run.ended


def test_a_failed_write_is_held_again_with_one_more_try():
    run = slot("r", unwritten=1)
    state = state_with(run)
    held = HeldWrite(ctx=run.ctx, outcomes=[object()])
    work = RoundWork(writes={"r": held})
    rounds.apply_result(state, work, RoundResult(failed_writes={"r": held}), now=5.0)
    assert state.writes.by_run["r"].tries == 1
    assert run.unwritten == 1


def test_a_refresh_gives_a_new_run_a_slot():
    state = state_with()
    rounds.refresh(state, [demand("r")], {"r": context("r")})
    assert "r" in state.slots


def test_a_refresh_keeps_a_run_with_results_unwritten_and_lets_go_of_an_idle_one():
    state = state_with(slot("writing", unwritten=1), slot("idle"))
    rounds.refresh(state, [], {})
    assert set(state.slots) == {"writing"}


def test_a_changed_context_replaces_the_old_only_once_nothing_is_held():
    state = state_with(slot("busy", in_flight=1), slot("free"))
    rounds.refresh(state, [demand("busy", current_pass=2), demand("free", current_pass=2)],
                   {"busy": context("busy", current_pass=2), "free": context("free", current_pass=2)})
    assert state.slots["busy"].ctx.current_pass == 1
    assert state.slots["free"].ctx.current_pass == 2


def test_a_refresh_counts_blocks_claimed_by_other_processes():
    state = state_with(slot("r", in_flight=3, unwritten=1))
    rounds.refresh(state, [demand("r", claimed=10)], {})
    assert state.slots["r"].elsewhere == 6


def test_collecting_a_round_takes_due_writes_and_give_backs():
    run = slot("r")
    state = state_with(run)
    state.hold_for_writing(run.ctx, [object()], now=0.0)
    state.end_run("r")
    work = rounds.collect_work(state, now=1.0, pack_metrics={}, refresh=True, recover=False)
    assert set(work.writes) == {"r"} and work.refresh and work.carries_work
    assert not state.writes
