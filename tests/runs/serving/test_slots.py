"""What a serving loop holds: results wait for their write batch, packs go back before a call could
outlive their lease, and a run is let go only when nothing of it is held."""

from apps.runs.services.decisions import Outcome
from apps.runs.serving.slots import LaneSlot, Release, WriteBuffer
from tests.runs.serving.cast import context, slot, state_with


def outcomes(n: int) -> list[Outcome]:
    return [Outcome(block_id=i, lease_token=None, attempt=1, output="ok") for i in range(n)]


def test_results_wait_for_their_batch_while_calls_are_in_flight():
    writes = WriteBuffer()
    writes.hold(context("r"), outcomes(2), now=10.0)
    assert not writes.due(10.1, batch_seconds=0.25, stopping=False, in_flight=5)
    assert writes.due(10.25, batch_seconds=0.25, stopping=False, in_flight=5)


def test_the_last_results_of_a_loop_with_nothing_in_flight_are_written_at_once():
    writes = WriteBuffer()
    writes.hold(context("r"), outcomes(1), now=10.0)
    assert writes.due(10.0, batch_seconds=0.25, stopping=False, in_flight=0)


def test_a_stopping_loop_writes_at_once():
    writes = WriteBuffer()
    writes.hold(context("r"), outcomes(1), now=10.0)
    assert writes.due(10.0, batch_seconds=0.25, stopping=True, in_flight=3)


def test_results_of_one_run_held_twice_are_written_together_with_the_most_tries():
    writes = WriteBuffer()
    writes.hold(context("r"), outcomes(1), now=1.0, tries=2)
    writes.hold(context("r"), outcomes(2), now=2.0)
    held = writes.take()["r"]
    assert (len(held.outcomes), held.tries) == (3, 2)
    assert writes.since is None and not writes


def test_the_batch_time_counts_from_the_oldest_result_held():
    writes = WriteBuffer()
    writes.hold(context("r"), outcomes(1), now=1.0)
    writes.hold(context("s"), outcomes(1), now=1.2)
    assert writes.due_at(0.25) == 1.25


def test_packs_held_past_their_start_by_are_given_back_and_fresh_ones_kept():
    run = slot("r", ready=3, start_by=5.0)
    run.ready[-1].start_by = 50.0
    released = run.give_back_stale(now=6.0)
    assert [len(r.block_ids) for r in released] == [1, 1]
    assert run.buffered == 1


def test_a_run_is_droppable_only_with_nothing_in_calls_ready_or_unwritten():
    assert slot("r").droppable
    assert not slot("r", ready=1).droppable
    assert not slot("r", in_flight=1).droppable
    assert not slot("r", unwritten=1).droppable


def test_results_held_for_writing_count_as_unwritten_on_their_run():
    run = slot("r")
    state = state_with(run)
    state.hold_for_writing(run.ctx, outcomes(2), now=0.0)
    assert run.unwritten == 2


def test_an_ended_run_gives_back_everything_it_holds_ready():
    run = slot("r", ready=2)
    state = state_with(run)
    state.end_run("r")
    assert run.ended and not run.ready
    assert sum(len(r.block_ids) for r in state.releases) == 2
    assert all(isinstance(r, Release) and r.run_id == "r" for r in state.releases)


def test_a_cacheable_run_calls_one_at_a_time_until_its_cache_is_warm():
    run = slot("r", parallelism=16)
    run.demand = run.demand.__class__(**{**run.demand.__dict__, "cache_warmed": False})
    assert run.parallelism == 1


def test_a_call_of_ours_ending_reopens_a_lane_that_was_full():
    lane = LaneSlot(closed_until=99.0, reason="window")
    lane.call_ended(1.0)
    assert lane.closed_until == 0.0 and lane.latency == 1.0


def test_a_lane_held_by_a_429_stays_shut_when_a_call_ends():
    lane = LaneSlot(closed_until=99.0, reason="throttled", latency=1.0)
    lane.call_ended(2.0)
    assert lane.closed_until == 99.0
    assert lane.latency == 1.1
