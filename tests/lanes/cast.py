"""What the lane tests share: one lane, one run, a fixed moment (the lanes' clock is passed in, so
nothing waits), and a way to run a body against the real Redis with a gate."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from apps.core.redis import async_broker_redis
from apps.lanes.gate import Ended, Grant, LaneGate, LaneRef, Need, Settle
from apps.lanes.limits import Limits
from apps.providers.headers import Dimension, RateLimitHeaders

LANE = LaneRef(key_id=1, group="haiku-4-5")
RUN = "run-under-test"
NOW = 1_900_000_000.0  # seconds; any fixed moment
CALL = Need(input_tokens=100, output_tokens=50)
UNKNOWN = Limits()


def run(body: Callable[[LaneGate], Awaitable[Any]], *, remember: bool = False) -> Any:
    async def main() -> Any:
        client = async_broker_redis()
        try:
            gate = LaneGate(client, remember=remember)
            result = await body(gate)
            await gate.remembered()
            return result
        finally:
            await client.aclose()

    return asyncio.run(main())


def headers(rpm: int = 0, rpm_left: int = -1, itpm: int = 0, itpm_left: int = -1, otpm: int = 0,
            otpm_left: int = -1) -> RateLimitHeaders:
    return RateLimitHeaders(requests=Dimension(rpm, rpm_left), input_tokens=Dimension(itpm, itpm_left),
                            output_tokens=Dimension(otpm, otpm_left))


async def acquire_many(gate: LaneGate, count: int, *, now: float = NOW, limits: Limits = UNKNOWN,
                       need: Need = CALL) -> list[Grant]:
    """The granted calls of one batch of `count` asked at `now`."""
    grants = await gate.try_acquire_many(LANE, run_id=RUN, needs=[need] * count, parallelism=10**6,
                                         limits=limits, now=now, lease_seconds=600)
    return [g for g in grants if g.granted]


async def settle_ok(gate: LaneGate, grant: Grant, *, now: float = NOW, limits: Limits = UNKNOWN,
                    latency: float = 0.0, answer: RateLimitHeaders | None = None, need: Need = CALL,
                    used_input: int = 100, used_output: int = 20, outcome: Settle = Settle.OK) -> None:
    await gate.settle_many(LANE, run_id=RUN, limits=limits, now=now, ended=[Ended(
        grant, need, used_input, used_output, outcome, headers=answer, latency_seconds=latency)])


async def lane_field(gate: LaneGate, name: str) -> float | None:
    raw = await gate.redis.hget(LANE.hash_key, name)
    return None if raw is None else float(raw)
