"""The gate every provider call passes: reserve in the lane before the call, settle after it.

A lane is one provider key and one model's rate-limit group. Its state lives in Redis, so every
worker process on every host shares it, and each operation is one atomic Lua script (lane.lua):
- `try_acquire_many` before calls (`try_acquire` for one): a call starts only if the lane is open,
  its concurrency window has room, the run is under its parallelism, and the request, its input
  tokens (estimated from the request) and its output tokens (`max_tokens`, as the API reserves
  them) fit the buckets;
- `settle_many` after them (`settle` for one; `Settlements` gathers a serving loop's ended calls
  between its turns): each reservation is reconciled with the real usage (cache reads do not count
  toward input tokens), the limits and remaining counts of the response's anthropic-ratelimit-*
  headers are learned, a 429 holds the lane until its Retry-After, and the window grows or is cut;
- `cancel` when a granted call never went out.
Each bucket holds `LANE_BURST_SECONDS` of its limit (the API enforces per-minute limits over shorter
intervals), and the window follows the lane's useful concurrency (Little's law: rate x latency x
`LANE_CONCURRENCY_HEADROOM`).
Nothing here is the source of truth for work (PostgreSQL is), but what a lane learned is kept there
too (apps/lanes/memory.py): if Redis is flushed, a lane starts again from its learned limits, latency
and window, not cautiously; in-flight entries expire on their own if a worker dies.
"""

import enum
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.core.ids import RunId
from apps.lanes.limits import Limits
from apps.lanes.memory import Learned, Remembering, recall_in_thread
from apps.providers.headers import RateLimitHeaders

logger = logging.getLogger(__name__)

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


def run_blocks_key(run_id: RunId) -> str:
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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# lane.lua's seed arguments when none are brought (limits r, i, o, latency ms, window, useful).
NO_SEED = [0, 0, 0, 0, 0, 0]


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _limit_args(limits: Limits) -> list[Any]:
    return [limits.rpm, limits.itpm, limits.otpm, "1" if limits.source == "explicit" else "0"]


def _header_args(headers: RateLimitHeaders | None) -> list[int]:
    if headers is None:
        return [0, -1, 0, -1, 0, -1]
    return [headers.requests.limit, headers.requests.remaining, headers.input_tokens.limit,
            headers.input_tokens.remaining, headers.output_tokens.limit, headers.output_tokens.remaining]


@dataclass(frozen=True)
class Ended:
    """One call's end, as `settle` reconciles it: what it reserved, what it used, how it ended."""

    grant: Grant
    need: Need
    used_input_tokens: int
    used_output_tokens: int
    outcome: Settle
    retry_after: float = 0.0
    headers: RateLimitHeaders | None = None
    latency_seconds: float = 0.0

    def args(self) -> list[Any]:
        return [self.grant.call_id, self.need.blocks, self.need.input_tokens, self.need.output_tokens,
                self.used_input_tokens, self.used_output_tokens, self.outcome.value,
                _ms(self.retry_after), *_header_args(self.headers), _ms(self.latency_seconds)]


class LaneGate:
    """One per worker process, over an asyncio Redis client; `now_ms` is the shared clock (Redis
    TIME would cost a round trip; the hosts' clocks are assumed in step, as the leases assume).
    `remember`: keep what lanes learn in PostgreSQL and seed lanes Redis lost from it (off only for
    tests of the lane alone)."""

    def __init__(self, redis_client: Any, *, remember: bool = True) -> None:
        self.redis = redis_client
        self.script = redis_client.register_script(SCRIPT)
        self.memory = Remembering(_conf()["LANE_REMEMBER_SECONDS"]) if remember else None

    async def try_acquire_many(self, lane: LaneRef, *, run_id: RunId, needs: Sequence[Need],
                               parallelism: int, limits: Limits, now: float, lease_seconds: float
                               ) -> list[Grant]:
        """Grants for the leading calls that may start now, in order; if one may not, its refusal
        ends the list (how long to wait and why), and the calls after it were not asked for."""
        conf = _conf()
        call_ids = [uuid.uuid4().hex for _ in needs]
        per_call: list[Any] = []
        for call_id, need in zip(call_ids, needs, strict=True):
            per_call += [call_id, need.blocks, need.input_tokens, need.output_tokens]
        head = ["acquire", _ms(now), _ms(now + lease_seconds), parallelism, *_limit_args(limits),
                conf["LANE_RATE_SAFETY"], conf["LANE_INITIAL_WINDOW"], conf["LANE_WINDOW_AFTER_HEADERS"],
                conf["LANE_BURST_SECONDS"]]
        keys = [lane.hash_key, lane.calls_key, run_blocks_key(run_id)]
        granted, wait_ms, reason = await self.script(
            keys=keys, args=[*head, "0", *NO_SEED, len(needs), *per_call])
        if _text(reason) == "cold":
            # Redis has nothing of this lane (first start, a flush, a new host's Redis): seed it
            # with what PostgreSQL remembers (nothing: the cautious start) and ask again.
            seed = await recall_in_thread(lane) if self.memory is not None else Learned()
            granted, wait_ms, reason = await self.script(
                keys=keys, args=[*head, "1", *seed.seed_args(), len(needs), *per_call])
        reason = _text(reason)
        grants = [Grant(True, call_id) for call_id in call_ids[:int(granted)]]
        if int(granted) < len(needs):
            grants.append(Grant(False, call_ids[int(granted)], float(wait_ms) / 1000, reason))
        return grants

    async def try_acquire(self, lane: LaneRef, *, run_id: RunId, need: Need, parallelism: int,
                          limits: Limits, now: float, lease_seconds: float) -> Grant:
        grants = await self.try_acquire_many(lane, run_id=run_id, needs=[need], parallelism=parallelism,
                                             limits=limits, now=now, lease_seconds=lease_seconds)
        return grants[0]

    async def settle_many(self, lane: LaneRef, *, run_id: RunId, limits: Limits, now: float,
                          ended: Sequence[Ended]) -> None:
        if not ended:
            return
        conf = _conf()
        per_call: list[Any] = []
        for end in ended:
            per_call += end.args()
        reply = await self.script(
            keys=[lane.hash_key, lane.calls_key, run_blocks_key(run_id)],
            args=["settle", _ms(now), *_limit_args(limits), conf["LANE_RATE_SAFETY"],
                  conf["LANE_INITIAL_WINDOW"], conf["LANE_MIN_WINDOW"], conf["LANE_OVERLOAD_CUT"],
                  _ms(conf["LANE_OVERLOAD_PAUSE_MAX_SECONDS"]), conf["LANE_WINDOW_AFTER_HEADERS"],
                  conf["LANE_BURST_SECONDS"], conf["LANE_CONCURRENCY_HEADROOM"], len(ended), *per_call],
        )
        window, _, rpm, itpm, otpm, latency_ms, useful, seeded = reply
        if self.memory is not None and int(seeded):
            self.memory.remember_soon(lane, Learned(
                rpm=int(rpm), itpm=int(itpm), otpm=int(otpm), latency_ms=float(_text(latency_ms)),
                window=float(_text(window)), useful=int(useful)), now)

    async def remembered(self) -> None:
        """Wait for the writes to PostgreSQL under way (a test, or a loop that ends)."""
        if self.memory is not None:
            await self.memory.drain()

    async def settle(self, lane: LaneRef, grant: Grant, *, run_id: RunId, need: Need, limits: Limits,
                     now: float, used_input_tokens: int, used_output_tokens: int, outcome: Settle,
                     retry_after: float = 0.0, headers: RateLimitHeaders | None = None,
                     latency_seconds: float = 0.0) -> None:
        await self.settle_many(lane, run_id=run_id, limits=limits, now=now, ended=[Ended(
            grant, need, used_input_tokens, used_output_tokens, outcome, retry_after, headers,
            latency_seconds)])

    async def cancel(self, lane: LaneRef, grant: Grant, *, run_id: RunId, need: Need, limits: Limits,
                     now: float) -> None:
        await self.script(
            keys=[lane.hash_key, lane.calls_key, run_blocks_key(run_id)],
            args=["cancel", _ms(now), grant.call_id, need.blocks, need.input_tokens, need.output_tokens,
                  *_limit_args(limits), _conf()["LANE_RATE_SAFETY"], _conf()["LANE_BURST_SECONDS"]],
        )


class Settlements:
    """The ends of calls gathered between two turns of a serving loop and settled together: one
    script call per lane and run, made before the loop starts its next calls (so what they gave back
    is there to take, and a 429 holds the lane before anything else is sent)."""

    def __init__(self, gate: LaneGate) -> None:
        self.gate = gate
        self.pending: dict[tuple[LaneRef, Any], tuple[Limits, list[Ended]]] = {}

    def __bool__(self) -> bool:
        return bool(self.pending)

    def add(self, lane: LaneRef, *, run_id: RunId, limits: Limits, ended: Ended) -> None:
        entry = self.pending.setdefault((lane, run_id), (limits, []))
        entry[1].append(ended)

    async def flush(self, now: float) -> None:
        pending, self.pending = self.pending, {}
        for (lane, run_id), (limits, ended) in pending.items():
            try:
                await self.gate.settle_many(lane, run_id=run_id, limits=limits, now=now, ended=ended)
            except Exception:  # Redis down: the entries expire with their leases; work is in PostgreSQL
                logger.warning("could not settle %d call(s) on lane %s", len(ended), lane.name,
                               exc_info=True)
