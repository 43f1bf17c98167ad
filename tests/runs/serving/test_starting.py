"""Starting calls, without a provider: pacing, a lane's refusals, packs that waited too long."""

import asyncio

import pytest

from apps.runs.serving import starting
from apps.runs.serving.slots import LaneSlot
from apps.runs.serving.starting import CallStarter
from tests.runs.serving.cast import slot, state_with


def test_a_lane_with_no_call_ended_yet_does_not_pace():
    assert starting.pace(slot("r"), LaneSlot(), now=0.0) == 1 << 30


def test_pacing_allows_a_burst_of_an_eighth_of_the_parallelism():
    run = slot("r", parallelism=80)
    assert starting.pace(run, LaneSlot(latency=1.0), now=100.0) == 10


def test_a_run_that_used_its_burst_waits_until_the_pace_allows_one_more():
    run = slot("r", parallelism=10)
    lane = LaneSlot(latency=1.0)
    starting.pace(run, lane, now=100.0)
    run.pace_tokens = 0.0
    assert starting.pace(run, lane, now=100.0) == 0
    assert run.room_at == pytest.approx(100.05)  # 2 x 10 per second: one start every 50 ms


def test_a_run_at_its_parallelism_waits_a_moment_and_its_lane_stays_open():
    state = state_with(slot("r"))
    starting.lane_refused(state, state.slots["r"], "parallelism", 0.0, now=10.0)
    assert state.slots["r"].room_at == 10.0 + starting.ROOM_RECHECK_SECONDS
    assert state.lanes == {}


def test_a_full_window_shuts_the_lane_until_a_call_ends_or_a_moment_passes():
    state = state_with(slot("r"))
    starting.lane_refused(state, state.slots["r"], "window", 0.0, now=10.0)
    lane = state.lane_of(state.slots["r"])
    assert (lane.reason, lane.closed_until) == ("window", 10.0 + starting.ROOM_RECHECK_SECONDS)


def test_a_short_throttle_keeps_what_the_runs_on_the_lane_hold():
    state = state_with(slot("r", ready=2))
    starting.lane_refused(state, state.slots["r"], "throttled", 1.0, now=10.0)
    assert state.lane_of(state.slots["r"]).closed_until == 11.0
    assert state.releases == []


def test_a_long_throttle_gives_back_what_every_run_on_the_lane_holds():
    state = state_with(slot("a", ready=2), slot("b", ready=1))
    starting.lane_refused(state, state.slots["a"], "throttled", 30.0, now=10.0)
    assert sum(len(r.block_ids) for r in state.releases) == 3
    assert not state.slots["a"].ready and not state.slots["b"].ready


def test_ready_packs_are_taken_in_whole_packs_up_to_the_room():
    run = slot("r", pack_size=2, ready=6)
    starter = CallStarter(state=state_with(run), gate=None, caller=None, settlements=None,
                          wake=asyncio.Event())
    packs = starter._take_ready(run, room=5, now=0.0)
    assert [p.size for p in packs] == [2, 2]


def test_a_pack_bigger_than_the_room_still_goes_alone():
    run = slot("r", pack_size=4, ready=4)
    starter = CallStarter(state=state_with(run), gate=None, caller=None, settlements=None,
                          wake=asyncio.Event())
    assert [p.size for p in starter._take_ready(run, room=1, now=0.0)] == [4]


def test_a_pack_past_its_start_by_is_given_back_instead_of_called():
    run = slot("r", ready=2, start_by=5.0)
    state = state_with(run)
    starter = CallStarter(state=state, gate=None, caller=None, settlements=None, wake=asyncio.Event())
    assert starter._take_ready(run, room=10, now=6.0) == []
    assert len(state.releases) == 2


def test_a_full_operator_ceiling_marks_the_lanes_of_runs_it_holds_back():
    state = state_with(slot("r", ready=3, in_flight=2), ceiling=2)
    state.in_flight = 2
    starter = CallStarter(state=state, gate=None, caller=None, settlements=None, wake=asyncio.Event())
    asyncio.run(starter.start_calls())
    assert state.lane_of(state.slots["r"]).ceiling_bound_at > 0


def test_a_ceiling_set_by_the_lanes_is_not_a_hosts_ceiling_binding():
    state = state_with(slot("r", ready=3, in_flight=2), ceiling=2)
    state.in_flight, state.ceiling_by = 2, "lanes"
    starter = CallStarter(state=state, gate=None, caller=None, settlements=None, wake=asyncio.Event())
    asyncio.run(starter.start_calls())
    assert state.lane_of(state.slots["r"]).ceiling_bound_at == float("-inf")
