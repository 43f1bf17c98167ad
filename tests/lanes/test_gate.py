"""The lane gate against the real Redis: what a call may do before it starts and what its answer
teaches the lane. Time is passed in explicitly (the lanes' clock), so nothing here waits."""

from typing import Any

import pytest
from django.conf import settings

from apps.core.redis import async_broker_redis
from apps.lanes.gate import LaneGate, Need, Settle
from apps.lanes.limits import Limits
from tests.lanes.cast import CALL, LANE, NOW, RUN, UNKNOWN, headers, run


@pytest.fixture(autouse=True)
def minute_buckets(settings: Any) -> None:
    """These tests count in minutes: buckets that hold a whole minute's limit (the burst-sized
    buckets of production are tested in test_burst.py)."""
    settings.CONVEYOR = {**settings.CONVEYOR, "LANE_BURST_SECONDS": 60}


async def acquire(gate: LaneGate, *, now: float = NOW, limits: Limits = UNKNOWN, parallelism: int = 1000,
                  need: Need = CALL, run_id: str = RUN) -> Any:
    return await gate.try_acquire(LANE, run_id=run_id, need=need, parallelism=parallelism, limits=limits,
                                  now=now, lease_seconds=60)


async def settle(gate: LaneGate, grant: Any, outcome: Settle = Settle.OK, *, now: float = NOW,
                 used_input: int = 100, limits: Limits = UNKNOWN, **kwargs: Any) -> None:
    await gate.settle(LANE, grant, run_id=RUN, need=CALL, limits=limits, now=now,
                      used_input_tokens=used_input, used_output_tokens=20, outcome=outcome, **kwargs)


def test_a_lane_nothing_is_known_about_starts_with_a_few_calls_at_once():
    async def body(gate: LaneGate) -> list[bool]:
        return [(await acquire(gate)).granted for _ in range(settings.CONVEYOR["LANE_INITIAL_WINDOW"] + 1)]

    granted = run(body)
    assert granted == [True] * settings.CONVEYOR["LANE_INITIAL_WINDOW"] + [False]


def test_the_first_headers_end_the_cautious_start_and_teach_the_limits():
    async def body(gate: LaneGate) -> tuple[Any, int]:
        grant = await acquire(gate)
        await settle(gate, grant, headers=headers(rpm=50, rpm_left=49))
        opened = 0
        while (await acquire(gate)).granted:
            opened += 1
        return opened

    # The window opened (to LANE_WINDOW_AFTER_HEADERS), but the request bucket learned from the
    # headers allows the 49 requests the provider said are left.
    assert run(body) == 49


def test_a_call_past_the_request_limit_waits_as_long_as_the_bucket_needs_to_refill():
    limits = Limits(rpm=60, source="explicit")

    async def body(gate: LaneGate) -> tuple[list[bool], Any, bool]:
        first = [(await acquire(gate, limits=limits)).granted for _ in range(60)]
        refused = await acquire(gate, limits=limits)
        later = await acquire(gate, limits=limits, now=NOW + refused.wait_seconds + 0.01)
        return first, refused, later.granted

    first, refused, later = run(body)
    assert all(first)
    assert (refused.granted, refused.reason) == (False, "rate_r")
    # 60 per minute, paced at LANE_RATE_SAFETY of it: about a second for the next one.
    assert 1.0 <= refused.wait_seconds <= 1.1
    assert later


def test_unused_input_tokens_come_back_when_the_call_settles():
    limits = Limits(itpm=1000, source="explicit")
    big = Need(input_tokens=400, output_tokens=10)

    async def body(gate: LaneGate) -> list[bool]:
        a = await acquire(gate, limits=limits, need=big)
        b = await acquire(gate, limits=limits, need=big)
        third_before = (await acquire(gate, limits=limits, need=big)).granted
        await gate.settle(LANE, a, run_id=RUN, need=big, limits=limits, now=NOW, used_input_tokens=100,
                          used_output_tokens=5, outcome=Settle.OK)
        third_after = (await acquire(gate, limits=limits, need=big)).granted
        return [a.granted, b.granted, third_before, third_after]

    # 1000 tokens: two reservations of 400 fit, a third does not until the first gives back 300.
    assert run(body) == [True, True, False, True]


def test_a_429_holds_the_lane_until_its_retry_after():
    async def body(gate: LaneGate) -> tuple[Any, bool]:
        grant = await acquire(gate)
        await settle(gate, grant, Settle.THROTTLED, used_input=0, retry_after=7.0)
        held = await acquire(gate, now=NOW + 6.9)
        after = await acquire(gate, now=NOW + 7.1)
        return held, after.granted

    held, after = run(body)
    assert (held.granted, held.reason) == (False, "throttled")
    assert held.wait_seconds == pytest.approx(0.1, abs=0.01)
    assert after


def window_after(outcomes: list[Settle]) -> float:
    """The lane's window after these answers, one call at a time, half a second apart."""
    async def body(gate: LaneGate) -> float:
        now = NOW
        for outcome in outcomes:
            grant = await acquire(gate, now=now)
            assert grant.granted
            await settle(gate, grant, outcome, now=now + 0.25, headers=headers(rpm=10_000, rpm_left=9_999),
                         latency_seconds=0.25)
            now += 0.5
        raw = await gate.redis.hget(LANE.hash_key, "cwnd")
        return float(raw)

    return run(body)


def test_a_sparse_529_backs_off_that_call_without_cutting_the_lane():
    calm = window_after([Settle.OK] * 50)
    sparse = window_after([Settle.OK] * 24 + [Settle.OVERLOAD] + [Settle.OK] * 25)
    assert sparse == calm


def test_dense_overload_cuts_the_lanes_window():
    calm = window_after([Settle.OK] * 10)
    dense = window_after([Settle.OK] * 10 + [Settle.OVERLOAD] * 4)
    assert dense <= calm / 2


def test_overload_that_persists_one_call_at_a_time_stops_the_lane_for_a_while_then_lets_it_probe():
    async def body(gate: LaneGate) -> tuple[Any, bool]:
        now = NOW
        for _ in range(40):
            grant = await acquire(gate, now=now)
            if not grant.granted:
                return grant, (await acquire(gate, now=now + grant.wait_seconds + 0.01)).granted
            await settle(gate, grant, Settle.OVERLOAD, now=now, used_input=0, latency_seconds=0.25)
            now += 0.3
        raise AssertionError("the lane never stopped")

    stopped, probe = run(body)
    assert stopped.reason == "overloaded"
    assert 0 < stopped.wait_seconds <= settings.CONVEYOR["LANE_OVERLOAD_PAUSE_MAX_SECONDS"]
    assert probe


def test_a_runs_parallelism_holds_across_workers():
    async def body(gate: LaneGate) -> list[bool]:
        other_worker = LaneGate(async_broker_redis(), remember=False)
        try:
            results = [(await acquire(gate, parallelism=3)).granted for _ in range(2)]
            results += [(await acquire(other_worker, parallelism=3)).granted for _ in range(2)]
        finally:
            await other_worker.redis.aclose()
        return results

    assert run(body) == [True, True, True, False]


def test_an_explicit_limit_on_the_key_caps_what_the_headers_allow():
    limits = Limits(rpm=5, source="explicit")

    async def body(gate: LaneGate) -> int:
        grant = await acquire(gate, limits=limits)
        await settle(gate, grant, limits=limits, headers=headers(rpm=1000, rpm_left=999))
        granted = 0
        while (await acquire(gate, limits=limits)).granted:
            granted += 1
        return granted

    assert run(body) == 4  # five a minute: one made, four left


def test_a_call_that_never_went_out_gives_its_reservation_back():
    limits = Limits(rpm=2, source="explicit")

    async def body(gate: LaneGate) -> list[bool]:
        first = await acquire(gate, limits=limits)
        second = await acquire(gate, limits=limits)
        await gate.cancel(LANE, second, run_id=RUN, need=CALL, limits=limits, now=NOW)
        third = await acquire(gate, limits=limits)
        return [first.granted, second.granted, third.granted]

    assert run(body) == [True, True, True]


def test_a_pack_bigger_than_the_runs_parallelism_still_goes_alone():
    pack = Need(input_tokens=100, output_tokens=50, blocks=5)

    async def body(gate: LaneGate) -> list[bool]:
        return [(await acquire(gate, parallelism=2, need=pack)).granted,
                (await acquire(gate, parallelism=2, need=CALL)).granted]

    assert run(body) == [True, False]


def test_a_batch_of_calls_is_granted_up_to_the_first_that_does_not_fit_in_one_round_trip():
    window = settings.CONVEYOR["LANE_INITIAL_WINDOW"]

    async def body(gate: LaneGate) -> list[Any]:
        return await gate.try_acquire_many(LANE, run_id=RUN, needs=[CALL] * (window + 3), parallelism=1000,
                                           limits=UNKNOWN, now=NOW, lease_seconds=60)

    grants = run(body)
    assert [g.granted for g in grants] == [True] * window + [False]
    assert grants[-1].reason == "window"
    assert len({g.call_id for g in grants}) == len(grants)


def test_a_batch_stops_at_the_run_parallelism_and_at_the_bucket_with_its_wait():
    limits = Limits(rpm=3, source="explicit")

    async def body(gate: LaneGate) -> tuple[list[Any], list[Any]]:
        by_run = await gate.try_acquire_many(LANE, run_id="other", needs=[CALL] * 5, parallelism=2,
                                             limits=limits, now=NOW, lease_seconds=60)
        by_rate = await gate.try_acquire_many(LANE, run_id=RUN, needs=[CALL] * 5, parallelism=1000,
                                              limits=limits, now=NOW, lease_seconds=60)
        return by_run, by_rate

    by_run, by_rate = run(body)
    assert [g.granted for g in by_run] == [True, True, False] and by_run[-1].reason == "parallelism"
    # Three requests a minute, two taken: one more now, then one every 20 s (at the safety margin).
    assert [g.granted for g in by_rate] == [True, False] and by_rate[-1].reason == "rate_r"
    assert 20 <= by_rate[-1].wait_seconds <= 22


def test_settling_a_batch_gives_back_every_call_and_a_429_among_them_holds_the_lane():
    from apps.lanes.gate import Ended

    async def body(gate: LaneGate) -> tuple[Any, Any]:
        grants = await gate.try_acquire_many(LANE, run_id=RUN, needs=[CALL] * 3, parallelism=3,
                                             limits=UNKNOWN, now=NOW, lease_seconds=60)
        ended = [Ended(g, CALL, 100, 20, Settle.OK) for g in grants[:2]]
        ended.append(Ended(grants[2], CALL, 0, 0, Settle.THROTTLED, retry_after=5.0))
        await gate.settle_many(LANE, run_id=RUN, limits=UNKNOWN, now=NOW, ended=ended)
        held = await acquire(gate, now=NOW + 1, parallelism=3)
        after = await gate.try_acquire_many(LANE, run_id=RUN, needs=[CALL] * 3, parallelism=3, limits=UNKNOWN,
                                            now=NOW + 5.1, lease_seconds=60)
        return held, after

    held, after = run(body)
    assert not held.granted and held.reason == "throttled"
    assert held.wait_seconds == pytest.approx(4.0, abs=0.01)
    # All three calls were given back: the run's parallelism of 3 is free again.
    assert [g.granted for g in after] == [True, True, True]
