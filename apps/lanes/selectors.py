"""Reading lanes for people: the API, the admin and `submit --follow` show what a key's lanes know
and do (limits and where they came from, current rate, calls in flight, window and useful
concurrency, throttled until, overload back-off). Read from Redis, where the workers keep them."""

import math
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from django.conf import settings

from apps.core.ids import RunId
from apps.core.redis import broker_redis
from apps.lanes.board import lane_ceiling_bound
from apps.lanes.gate import LaneRef, run_blocks_key
from apps.lanes.limits import Limits, key_limits, limit_group


@dataclass(frozen=True)
class LaneState:
    group: str
    rpm_limit: int
    itpm_limit: int
    otpm_limit: int
    # headers (learned from the provider), remembered (learned before Redis lost the lane; the next
    # headers confirm or correct it), explicit (the key's settings), tier, or "" (unknown yet)
    limits_source: str
    in_flight: int
    # Calls started per minute, averaged over about the last minute.
    rate_rpm: float
    window: float
    # Little's law: the calls the lane can use in flight (its limits' calls per second x its latency x
    # headroom); the window is kept at least this. 0: limits or latency not known yet.
    useful_concurrency: int
    throttled_until: datetime | None
    overloaded_until: datetime | None
    # A serving process's in-flight ceiling while it holds this lane's runs back (0: none does), and
    # what sets it (SERVE_MAX_IN_FLIGHT or open files): apps/lanes/board.py.
    ceiling_bound: int = 0
    ceiling_bound_by: str = ""

    @property
    def waiting(self) -> str | None:
        now = datetime.now(UTC)
        if self.throttled_until and self.throttled_until > now:
            return f"key rate-limited (429) until {self.throttled_until:%H:%M:%S} UTC"
        if self.overloaded_until and self.overloaded_until > now:
            return f"provider overloaded; lane paused until {self.overloaded_until:%H:%M:%S} UTC"
        if self.ceiling_bound:
            return ceiling_bound_text(self.ceiling_bound, self.ceiling_bound_by)
        return None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ceiling_bound_text(calls: int, bound_by: str) -> str:
    """What a run or lane held back by a host's in-flight ceiling says, with what to change."""
    setting = bound_by or "SERVE_MAX_IN_FLIGHT"
    return (f"waiting on: this host's in-flight ceiling ({calls:,} calls; {setting}) — raise it or add "
            "workers/hosts")


def _moment(ms: str | None) -> datetime | None:
    if not ms:
        return None
    value = float(ms)
    return datetime.fromtimestamp(value / 1000, UTC) if value > time.time() * 1000 else None


def _state(client: redis.Redis, lane: LaneRef, limits: Limits) -> LaneState:
    now_ms = time.time() * 1000
    # (The client answers bytes, without decode_responses; its stubs say bytes or str.)
    raw = {k.decode(): v.decode() for k, v in client.hgetall(lane.hash_key).items()}  # type: ignore[union-attr]
    in_flight = client.zcount(lane.calls_key, now_ms, "+inf")

    def limit(dim: str, configured: int) -> int:
        learned = int(float(raw.get(f"lim_{dim}", 0) or 0))
        if learned and limits.source == "explicit" and configured and configured < learned:
            return configured
        return learned or configured

    rate = float(raw.get("rate", 0) or 0)
    if raw.get("rate_t"):
        rate *= math.exp(-max(0.0, now_ms - float(raw["rate_t"])) / 60000)
    learned = any(raw.get(f"lim_{d}") not in (None, "", "0") for d in "rio")
    bound = lane_ceiling_bound(client, lane)
    return LaneState(
        group=lane.group,
        rpm_limit=limit("r", limits.rpm), itpm_limit=limit("i", limits.itpm),
        otpm_limit=limit("o", limits.otpm),
        limits_source=("remembered" if raw.get("src") == "memory" else "headers") if learned
        else limits.source,
        in_flight=in_flight, rate_rpm=round(rate, 1),
        window=round(float(raw.get("cwnd", settings.CONVEYOR["LANE_INITIAL_WINDOW"])), 2),
        useful_concurrency=int(float(raw.get("useful", 0) or 0)),
        throttled_until=_moment(raw.get("until_throttled")),
        overloaded_until=_moment(raw.get("until_paused")),
        ceiling_bound=bound.ceiling_bound if bound else 0,
        ceiling_bound_by=bound.bound_by if bound else "",
    )


def lane_for(key: Any, model: str) -> LaneRef:
    return LaneRef(key_id=key.pk, group=limit_group(model))


def limits_for(key: Any, model: str) -> Limits:
    return key_limits(tier=key.tier, rpm=key.rpm_limit, itpm=key.itpm_limit, otpm=key.otpm_limit,
                      model=model)


def lane_state(*, key: Any, model: str) -> LaneState | None:
    """The lane a run on this key and model uses; None when Redis cannot say."""
    try:
        return _state(broker_redis(), lane_for(key, model), limits_for(key, model))
    except redis.RedisError:
        return None


def lanes_of_key(*, key: Any) -> list[LaneState]:
    """Every lane of the key the workers have used (most recent first is not tracked: by name)."""
    client = broker_redis()
    prefix = f"conveyor:lane:{key.pk}:"
    try:
        names = sorted({
            name.decode()[len(prefix):] for name in client.scan_iter(match=prefix + "*", count=200)
            if not name.decode().endswith(":calls")
        })
        return [_state(client, LaneRef(key.pk, group), limits_for(key, group)) for group in names]
    except redis.RedisError:
        return []


def run_blocks_in_flight(*, run_id: RunId) -> int | None:
    """How many of the run's blocks are in provider calls now, on every worker (None: Redis cannot
    say)."""
    try:
        return broker_redis().zcount(run_blocks_key(run_id), time.time() * 1000, "+inf")
    except redis.RedisError:
        return None


def lanes_of_keys(*, keys: list[Any]) -> list[tuple[int, LaneState]]:
    """Every lane the workers have used, of these keys, as (key id, state): one SCAN for them all
    (metrics read every key's lanes on each scrape). Raises redis.RedisError when Redis cannot say."""
    client = broker_redis()
    by_id = {key.pk: key for key in keys}
    prefix = "conveyor:lane:"
    lanes = set()
    for raw in client.scan_iter(match=prefix + "*", count=500):
        name = raw.decode()[len(prefix):]
        key_id, _, group = name.partition(":")
        if group and ":" not in group and key_id.isdigit() and int(key_id) in by_id:
            lanes.add((int(key_id), group))
    return [(key_id, _state(client, LaneRef(key_id, group), limits_for(by_id[key_id], group)))
            for key_id, group in sorted(lanes)]
