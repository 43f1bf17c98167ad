"""What the anthropic-ratelimit-* headers teach a lane's buckets. The provider counts a call when it
admits it, at its start: its `remaining` already lacks every call of ours admitted before, and its
bucket has refilled for the call's latency since. So `remaining + refilled` bounds our level, and our
other calls in flight are not taken from it a second time (which, with a thousand in flight, left
the level hugely negative and the lane starved)."""

from django.conf import settings

from apps.lanes.gate import LaneGate
from apps.lanes.limits import Limits
from tests.lanes.cast import NOW, acquire_many, headers, run, settle_ok

RPM = 6000  # 100 a second; a bucket of 50 at LANE_BURST_SECONDS=0.5
LIMITS = Limits(rpm=RPM, source="tier")


async def many_in_flight(gate: LaneGate, count: int, latency: float) -> tuple[list, float]:
    """`count` calls started, paced by the lane, after a first answer taught it the latency (so its
    window holds them all). Returns the grants and the moment the last started."""
    [first] = await acquire_many(gate, 1, limits=LIMITS)
    await settle_ok(gate, first, limits=LIMITS, latency=latency, answer=headers(rpm=RPM, rpm_left=RPM - 1))
    grants, now = [], NOW
    while len(grants) < count:
        now += 0.5
        grants += await acquire_many(gate, min(49, count - len(grants)), now=now, limits=LIMITS)
    return grants, now


def test_many_calls_in_flight_do_not_starve_the_lane_when_the_provider_says_it_has_room():
    async def body(gate: LaneGate) -> int:
        grants, now = await many_in_flight(gate, 1500, latency=20.0)
        # One of them answers: the provider's short bucket is near full.
        await settle_ok(gate, grants[0], now=now + 0.1, limits=LIMITS, latency=20.0,
                        answer=headers(rpm=RPM, rpm_left=45))
        return len(await acquire_many(gate, 10, now=now + 0.2, limits=LIMITS))

    # (Taking the 1,499 other calls in flight off the provider's 45 once more would have held the
    # lane for ~15 s.)
    assert run(body) == 10


def test_headers_saying_the_provider_has_little_left_cap_what_starts_next():
    async def body(gate: LaneGate) -> int:
        [grant] = await acquire_many(gate, 1, limits=LIMITS)
        # Nothing left when the call was admitted, a tenth of a second ago: what refilled since.
        await settle_ok(gate, grant, now=NOW + 0.1, limits=LIMITS, latency=0.1,
                        answer=headers(rpm=RPM, rpm_left=0))
        return len(await acquire_many(gate, 100, now=NOW + 0.1, limits=LIMITS))

    refilled = 0.1 * RPM / 60 * settings.CONVEYOR["LANE_RATE_SAFETY"]
    assert run(body) == int(refilled)
