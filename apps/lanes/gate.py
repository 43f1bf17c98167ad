"""The gate every provider call passes: reserve in the lane before the call, settle after it.

A lane is one provider key and one model's rate-limit group. Its state lives in Redis, so every
worker process on every host shares it, and each operation is one atomic Lua script (lane.lua):
- `try_acquire` before a call: the call starts only if the lane is open, its concurrency window has
  room, the run is under its parallelism, and the request, its input tokens (estimated from the
  request) and its output tokens (`max_tokens`, as the API reserves them) fit the buckets;
- `settle` after it: the reservation is reconciled with the real usage (cache reads do not count
  toward input tokens), the limits and remaining counts of the response's anthropic-ratelimit-*
  headers are learned, a 429 holds the lane until its Retry-After, and the window grows or is cut;
- `cancel` when a granted call never went out.
Nothing here is the source of truth for work (PostgreSQL is): if Redis is flushed, lanes start again
cautiously, and in-flight entries expire on their own if a worker dies.
"""

import enum
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.lanes.limits import Limits
from apps.providers.headers import RateLimitHeaders

SCRIPT = (Path(__file__).with_name("lane.lua")).read_text()


class Settle(enum.StrEnum):
    OK = "ok"              # a success: the window may grow
    OVERLOAD = "overload"  # 529, 5xx, a timeout: cut the window if overload is dense
    THROTTLED = "throttled"  # 429: hold the lane until Retry-After
    NEUTRAL = "neutral"    # an answer that says nothing about capacity (a 400, a 401)


@dataclass(frozen=True)
class LaneRef:
    key_id: int
    group: str

    @property
    def name(self) -> str:
        return f"{self.key_id}:{self.group}"

    @property
    def hash_key(self) -> str:
        return f"conveyor:lane:{self.name}"

    @property
    def calls_key(self) -> str:
        return f"conveyor:lane:{self.name}:calls"


def run_blocks_key(run_id: Any) -> str:
    return f"conveyor:run:{run_id}:in-flight"


@dataclass(frozen=True)
class Need:
    """What one call reserves: one request, its estimated input tokens, max_tokens of output."""

    input_tokens: int
    output_tokens: int
    blocks: int = 1


@dataclass(frozen=True)
class Grant:
    granted: bool
    call_id: str
    wait_seconds: float = 0.0
    # ok, throttled, overloaded, window, parallelism, rate_r / rate_i / rate_o (which bucket)
    reason: str = "ok"


def _conf() -> dict[str, Any]:
    return settings.CONVEYOR


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _limit_args(limits: Limits) -> list[Any]:
    return [limits.rpm, limits.itpm, limits.otpm, "1" if limits.source == "explicit" else "0"]


def _header_args(headers: RateLimitHeaders | None) -> list[int]:
    if headers is None:
        return [0, -1, 0, -1, 0, -1]
    return [headers.requests.limit, headers.requests.remaining, headers.input_tokens.limit,
            headers.input_tokens.remaining, headers.output_tokens.limit, headers.output_tokens.remaining]


class LaneGate:
    """One per worker process, over an asyncio Redis client; `now_ms` is the shared clock (Redis
    TIME would cost a round trip; the hosts' clocks are assumed in step, as the leases assume)."""

    def __init__(self, redis_client: Any) -> None:
        self.redis = redis_client
        self.script = redis_client.register_script(SCRIPT)

    async def try_acquire(self, lane: LaneRef, *, run_id: Any, need: Need, parallelism: int,
                          limits: Limits, now: float, lease_seconds: float) -> Grant:
        conf = _conf()
        call_id = uuid.uuid4().hex
        granted, wait_ms, reason = await self.script(
            keys=[lane.hash_key, lane.calls_key, run_blocks_key(run_id)],
            args=["acquire", _ms(now), call_id, _ms(now + lease_seconds), need.blocks, parallelism,
                  need.input_tokens, need.output_tokens, *_limit_args(limits),
                  conf["LANE_RATE_SAFETY"], conf["LANE_INITIAL_WINDOW"], conf["LANE_WINDOW_AFTER_HEADERS"]],
        )
        reason = reason.decode() if isinstance(reason, bytes) else reason
        return Grant(bool(granted), call_id, float(wait_ms) / 1000, reason)

    async def settle(self, lane: LaneRef, grant: Grant, *, run_id: Any, need: Need, limits: Limits,
                     now: float, used_input_tokens: int, used_output_tokens: int, outcome: Settle,
                     retry_after: float = 0.0, headers: RateLimitHeaders | None = None,
                     latency_seconds: float = 0.0) -> None:
        conf = _conf()
        await self.script(
            keys=[lane.hash_key, lane.calls_key, run_blocks_key(run_id)],
            args=["settle", _ms(now), grant.call_id, need.blocks, need.input_tokens, need.output_tokens,
                  used_input_tokens, used_output_tokens, outcome.value, _ms(retry_after),
                  *_header_args(headers), *_limit_args(limits), conf["LANE_RATE_SAFETY"],
                  conf["LANE_INITIAL_WINDOW"], conf["LANE_MIN_WINDOW"], conf["LANE_OVERLOAD_CUT"],
                  _ms(latency_seconds), _ms(conf["LANE_OVERLOAD_PAUSE_MAX_SECONDS"]),
                  conf["LANE_WINDOW_AFTER_HEADERS"]],
        )

    async def cancel(self, lane: LaneRef, grant: Grant, *, run_id: Any, need: Need, limits: Limits,
                     now: float) -> None:
        await self.script(
            keys=[lane.hash_key, lane.calls_key, run_blocks_key(run_id)],
            args=["cancel", _ms(now), grant.call_id, need.blocks, need.input_tokens, need.output_tokens,
                  *_limit_args(limits), _conf()["LANE_RATE_SAFETY"]],
        )
