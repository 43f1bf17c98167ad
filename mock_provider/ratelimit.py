"""Per-API-key token buckets for requests, input tokens and output tokens per minute.

Each bucket refills continuously (limit/60 per second), which is how the API describes its own
limiter, and holds `burst_seconds` worth of its limit (one second's by default): the API says its
limits may be enforced over shorter intervals than a minute (60 RPM as one a second), so a burst of a
whole minute's limit at once is refused. The headers stay on the minute's scale, as the API's
documented values are: the per-minute limit, remaining as a minute-sized bucket charged alike would
hold, and when that one is full again as reset (so a client reading remaining is never told less than
the minute allows; the 429 and its retry-after are what tell it about the short bucket).

A request is admitted when it finds at least one request, its input cost (input + cache-write
tokens; cache reads are free, as for most models) and one output token in the buckets; its actual
output is charged once known and may drive the output bucket negative, which then throttles the next
requests until it refills (so a long reply is never refused outright).
A cost larger than a whole bucket only needs a full bucket, else it could never pass.

Unset limits are not enforced; their headers report 1,000,000,000 so clients always find integers.
"""

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

UNLIMITED = 1_000_000_000


@dataclass
class Bucket:
    """What enforces a limit (`level`, up to `capacity`: burst_seconds of it) and what the headers
    report (`minute_level`, up to the limit itself); both are charged alike and refill at limit / 60 a
    second, so the minute's view never refuses what the short bucket admits."""

    limit: float  # per minute
    capacity: float
    level: float
    minute_level: float
    updated: float

    @classmethod
    def full(cls, limit: float, burst_seconds: float, now: float) -> "Bucket":
        # Never below one unit, so a limit under one per burst still admits one request at a time.
        capacity = max(1.0, limit * burst_seconds / 60.0)
        return cls(limit, capacity, capacity, limit, now)

    def refill(self, now: float) -> None:
        if now > self.updated:
            refilled = (now - self.updated) * self.limit / 60.0
            self.level = min(self.capacity, self.level + refilled)
            self.minute_level = min(self.limit, self.minute_level + refilled)
        self.updated = now

    def take(self, amount: float) -> None:
        self.level -= amount
        self.minute_level -= amount

    def wait_for(self, amount: float) -> float:
        """Seconds until the bucket holds `amount` (capped at its capacity)."""
        missing = min(amount, self.capacity) - self.level
        return max(0.0, missing * 60.0 / self.limit)

    def seconds_to_full(self) -> float:
        """Until the minute's view is full again: what `reset` reports."""
        return max(0.0, (self.limit - self.minute_level) * 60.0 / self.limit)


@dataclass(frozen=True)
class Admission:
    admitted: bool
    retry_after: int = 0  # whole seconds, when refused
    dimension: str = ""  # which limit refused it
    limit: int = 0


class KeyBuckets:
    def __init__(self, limits: dict[str, int | None], burst_seconds: float, now: float) -> None:
        self.limited = {name: limit is not None for name, limit in limits.items()}
        self.buckets = {
            name: Bucket.full(float(limit), burst_seconds, now) if limit is not None
            else Bucket(float(UNLIMITED), float(UNLIMITED), float(UNLIMITED), float(UNLIMITED), now)
            for name, limit in limits.items()
        }


DIMENSIONS = ("requests", "input-tokens", "output-tokens")
DIMENSION_WORDS = {"requests": "requests", "input-tokens": "input tokens", "output-tokens": "output tokens"}


def _rfc3339(timestamp: float) -> str:
    return _rfc3339_second(int(timestamp))


@functools.lru_cache(maxsize=4096)
def _rfc3339_second(second: int) -> str:
    # Four reset headers per response, mostly the same few seconds: format each second once.
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=64)
def _unlimited_headers(reset: str) -> dict[str, str]:
    names = (*DIMENSIONS, "tokens")
    return {
        **{f"anthropic-ratelimit-{name}-limit": str(UNLIMITED) for name in names},
        **{f"anthropic-ratelimit-{name}-remaining": str(UNLIMITED) for name in names},
        **{f"anthropic-ratelimit-{name}-reset": reset for name in names},
    }


class RateLimiter:
    def __init__(self, *, rpm: int | None, itpm: int | None, otpm: int | None, burst_seconds: float = 1.0,
                 clock: Callable[[], float], wall: Callable[[], float]) -> None:
        self._clock = clock
        self._wall = wall
        self._keys: dict[str, KeyBuckets] = {}
        self.reconfigure(rpm=rpm, itpm=itpm, otpm=otpm, burst_seconds=burst_seconds)

    def reconfigure(self, *, rpm: int | None, itpm: int | None, otpm: int | None,
                    burst_seconds: float = 1.0) -> None:
        """New limits start from full buckets: simpler to reason about in tests than rescaling."""
        self._limits = {"requests": rpm, "input-tokens": itpm, "output-tokens": otpm}
        self._burst_seconds = burst_seconds
        # With no limit at all (the default, and what benchmarks use) skip the buckets entirely.
        self._unlimited = rpm is None and itpm is None and otpm is None
        self._keys.clear()

    def clear(self) -> None:
        self._keys.clear()

    def _buckets(self, key: str) -> KeyBuckets:
        now = self._clock()
        entry = self._keys.get(key)
        if entry is None:
            entry = self._keys[key] = KeyBuckets(self._limits, self._burst_seconds, now)
        else:
            for bucket in entry.buckets.values():
                bucket.refill(now)
        return entry

    def admit(self, key: str, *, input_cost: int) -> Admission:
        if self._unlimited:
            return Admission(True)
        entry = self._buckets(key)
        needs = {"requests": 1, "input-tokens": input_cost, "output-tokens": 1}
        refused = [
            (entry.buckets[name].wait_for(amount), name)
            for name, amount in needs.items()
            if entry.limited[name] and entry.buckets[name].level < min(amount, entry.buckets[name].capacity)
        ]
        if refused:
            wait, name = max(refused)
            return Admission(False, max(1, math.ceil(wait)), name, int(entry.buckets[name].limit))
        for name, amount in needs.items():
            if name != "output-tokens":
                entry.buckets[name].take(amount)
        return Admission(True)

    def charge_output(self, key: str, output_tokens: int) -> None:
        if not self._unlimited:
            self._buckets(key).buckets["output-tokens"].take(output_tokens)

    def headers(self, key: str) -> dict[str, str]:
        wall = self._wall()
        if self._unlimited:
            return dict(_unlimited_headers(_rfc3339(wall)))
        entry = self._buckets(key)
        headers: dict[str, str] = {}
        for name in DIMENSIONS:
            bucket = entry.buckets[name]
            headers[f"anthropic-ratelimit-{name}-limit"] = str(int(bucket.limit))
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(max(0, int(bucket.minute_level)))
            headers[f"anthropic-ratelimit-{name}-reset"] = _rfc3339(wall + bucket.seconds_to_full())
        # `tokens-*` shows the most restrictive token limit in force, remaining rounded to 1,000.
        tightest = min((entry.buckets["input-tokens"], entry.buckets["output-tokens"]),
                       key=lambda b: b.minute_level / b.limit)
        headers["anthropic-ratelimit-tokens-limit"] = str(int(tightest.limit))
        headers["anthropic-ratelimit-tokens-remaining"] = str(max(0, int(round(tightest.minute_level, -3))))
        headers["anthropic-ratelimit-tokens-reset"] = _rfc3339(wall + tightest.seconds_to_full())
        return headers

    @staticmethod
    def refusal_message(admission: Admission) -> str:
        words = DIMENSION_WORDS[admission.dimension]
        return (f"This request would exceed your organization's rate limit of {admission.limit:,} {words} "
                "per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see "
                "the response headers for current usage. Please reduce the prompt length or the maximum "
                "tokens requested, or try again later.")
