"""A lane's window follows its useful concurrency (Little's law): the calls per second its limits
allow x the latency it measures x LANE_CONCURRENCY_HEADROOM. A tier-4 key (4,000 requests a minute)
at 15 s needs ~1,000 calls in flight; a window of 256 would use a quarter of it."""

import math

from django.conf import settings

from apps.lanes.gate import LaneGate, Settle
from apps.lanes.limits import Limits
from tests.lanes.cast import NOW, acquire_many, headers, lane_field, run, settle_ok


def useful(calls_per_minute: float, latency_seconds: float) -> int:
    conf = settings.CONVEYOR
    return math.ceil(calls_per_minute / 60 * conf["LANE_RATE_SAFETY"] * latency_seconds
                     * conf["LANE_CONCURRENCY_HEADROOM"])


def test_a_lane_that_knows_its_limits_and_latency_opens_its_window_to_rate_times_latency():
    async def body(gate: LaneGate) -> tuple[float | None, float | None]:
        [grant] = await acquire_many(gate, 1)
        await settle_ok(gate, grant, now=NOW + 15, latency=15.0, answer=headers(rpm=4000, rpm_left=3999))
        return await lane_field(gate, "cwnd"), await lane_field(gate, "useful")

    window, known = run(body)
    assert known == useful(4000, 15) > 1000
    assert window == known


def test_before_the_latency_is_known_the_window_opens_to_the_window_after_headers():
    async def body(gate: LaneGate) -> float | None:
        [grant] = await acquire_many(gate, 1)
        await settle_ok(gate, grant, answer=headers(rpm=4000, rpm_left=3999))
        return await lane_field(gate, "cwnd")

    assert run(body) == settings.CONVEYOR["LANE_WINDOW_AFTER_HEADERS"]


def test_the_binding_token_limit_sets_the_useful_concurrency():
    # 400,000 output tokens a minute at 1,000 a call: 400 calls a minute, not the 4,000 requests.
    async def body(gate: LaneGate) -> float | None:
        [grant] = await acquire_many(gate, 1)
        await settle_ok(gate, grant, now=NOW + 15, latency=15.0, used_output=1000,
                        answer=headers(rpm=4000, rpm_left=3999, otpm=400_000, otpm_left=399_000))
        return await lane_field(gate, "useful")

    assert run(body) == useful(400, 15)


def test_a_key_with_known_limits_uses_them_with_the_measured_latency():
    tier_4 = Limits(rpm=4000, itpm=2_000_000, otpm=400_000, source="tier")

    async def body(gate: LaneGate) -> float | None:
        [grant] = await acquire_many(gate, 1, limits=tier_4)
        await settle_ok(gate, grant, now=NOW + 20, latency=20.0, limits=tier_4, used_output=64)
        return await lane_field(gate, "cwnd")

    assert run(body) == useful(4000, 20)


def test_dense_overload_still_cuts_the_window_below_its_useful_concurrency_and_it_comes_back():
    answer = headers(rpm=4000, rpm_left=3999)

    async def body(gate: LaneGate) -> tuple[float | None, float | None, float | None]:
        grants = await acquire_many(gate, 20, now=NOW, limits=Limits(rpm=4000, source="tier"))
        assert len(grants) == 20
        await settle_ok(gate, grants[0], now=NOW + 15, latency=15.0, answer=answer)
        for grant in grants[1:8]:
            await settle_ok(gate, grant, now=NOW + 15.5, latency=15.0, outcome=Settle.OVERLOAD)
        cut = await lane_field(gate, "cwnd")
        # Two round trips later, overload gone: back to the useful concurrency.
        for grant in grants[8:]:
            await settle_ok(gate, grant, now=NOW + 50, latency=15.0, answer=answer)
        return await lane_field(gate, "useful"), cut, await lane_field(gate, "cwnd")

    known, cut, later = run(body)
    assert cut is not None and known is not None and cut <= known / 2
    assert later == known


def test_a_key_that_declared_its_tier_fills_past_the_window_after_headers_before_any_call_returns():
    # Nothing has come back yet (15 s calls): the buckets pace the starts at the tier's rate, and the
    # calls in flight grow past LANE_WINDOW_AFTER_HEADERS instead of waiting a latency at 256.
    tier_4 = Limits(rpm=4000, itpm=2_000_000, otpm=400_000, source="tier")

    async def body(gate: LaneGate) -> int:
        granted = 0
        for second in range(10):
            granted += len(await acquire_many(gate, 100, now=NOW + second, limits=tier_4))
        return granted

    started = run(body)
    assert started > settings.CONVEYOR["LANE_WINDOW_AFTER_HEADERS"]
    assert started <= 10 * 4000 / 60 + 4000 / 60  # never faster than the rate (and one burst)
