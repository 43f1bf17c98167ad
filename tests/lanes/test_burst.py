"""Buckets hold LANE_BURST_SECONDS of their limit, not a minute: the API enforces its per-minute
limits with a token bucket over shorter intervals, so a fresh lane that fired a minute's worth in
its first second would get 429s."""

import pytest
from django.conf import settings

from apps.lanes.gate import LaneGate, Need
from apps.lanes.limits import Limits
from tests.lanes.cast import LANE, NOW, RUN, acquire_many, run

TIER_4 = Limits(rpm=4000, itpm=2_000_000, otpm=400_000, source="tier")


def test_a_fresh_lane_starts_no_more_than_a_seconds_worth_of_its_limit_at_once():
    async def body(gate: LaneGate) -> int:
        return len(await acquire_many(gate, 1000, limits=TIER_4))

    started = run(body)
    assert started == int(4000 * settings.CONVEYOR["LANE_BURST_SECONDS"] / 60)
    assert started <= 4000 / 60


def test_after_its_burst_a_lane_starts_calls_at_its_limits_rate():
    async def body(gate: LaneGate) -> int:
        started = 0
        for tick in range(31):  # three seconds, a tenth of a second apart (within the window)
            started += len(await acquire_many(gate, 100, now=NOW + tick / 10, limits=TIER_4))
        return started

    burst = 4000 * settings.CONVEYOR["LANE_BURST_SECONDS"] / 60
    paced = 4000 / 60 * settings.CONVEYOR["LANE_RATE_SAFETY"] * 3
    assert run(body) == pytest.approx(burst + paced, abs=2)


def test_the_refusal_after_the_burst_says_which_bucket_and_how_long():
    async def body(gate: LaneGate) -> tuple[float, str]:
        grants = await gate.try_acquire_many(LANE, run_id=RUN, needs=[Need(100, 50)] * 100,
                                             parallelism=1000, limits=TIER_4, now=NOW, lease_seconds=60)
        return grants[-1].wait_seconds, grants[-1].reason

    wait, reason = run(body)
    assert reason == "rate_r"
    assert 0 < wait <= 60 / 4000 / settings.CONVEYOR["LANE_RATE_SAFETY"] + 0.001


def test_a_call_bigger_than_the_bucket_goes_with_a_full_bucket():
    # 6,000 input tokens a minute: a bucket of 50; a call of 400 goes when the bucket is full.
    limits = Limits(itpm=6000, source="explicit")
    big = Need(input_tokens=400, output_tokens=10)

    async def body(gate: LaneGate) -> tuple[int, int]:
        first = len(await acquire_many(gate, 2, limits=limits, need=big))
        refill = 50 / (6000 / 60 * settings.CONVEYOR["LANE_RATE_SAFETY"])
        later = len(await acquire_many(gate, 1, now=NOW + refill + 0.01, limits=limits, need=big))
        return first, later

    # The first takes a full bucket and leaves a debt of 350 tokens, paid back before the next one.
    first, later = run(body)
    assert first == 1
    assert later == 0


def test_a_limit_below_one_request_per_burst_still_lets_one_request_go():
    limits = Limits(rpm=60, source="explicit")

    async def body(gate: LaneGate) -> list[int]:
        return [len(await acquire_many(gate, 5, now=NOW + t, limits=limits)) for t in (0, 0.5, 1.1)]

    assert run(body) == [1, 0, 1]
