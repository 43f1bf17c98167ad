"""An expiring prefix cache that bills like the API's prompt caching.

An entry is the hash of the prompt up to a breakpoint (chained over the blocks in prefix order, seeded
with the API key and model, so keys and models never share entries). On a request:

- breakpoints whose prefix is below the model's minimum cacheable length are ignored (silently, like
  the API: both cache fields stay 0);
- each remaining breakpoint looks back up to 20 blocks for a live entry; the furthest hit, A, is read;
- every breakpoint after A is written, billed by its own TTL: with 1h ones before 5m ones this gives
  1h writes for (B - A) and 5m writes for (C - B);
- `input_tokens` is what follows the last breakpoint, so input + written + read = the whole prompt.

Planning is separate from committing: the app plans before it admits a request (the input-token rate
limit counts writes but not reads) and commits only once the reply starts, so a request that fails on
the way writes nothing, and concurrent identical requests may all miss, as with the API. Both take an
optional `now`: a batch request is answered at its scheduled time on the mock's clock, which may be
earlier than the moment the mock gets round to it.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from mock_provider.prompt import TTL_SECONDS, ParsedRequest

LOOKBACK_BLOCKS = 20
# Expired entries are only dropped lazily on lookup; sweep now and then so a soak run stays bounded.
SWEEP_EVERY_WRITES = 10_000


@dataclass(frozen=True)
class CachePlan:
    input_tokens: int
    read_tokens: int
    write_5m_tokens: int
    write_1h_tokens: int
    writes: tuple[tuple[bytes, float], ...] = ()  # (prefix hash, ttl seconds)
    refreshes: tuple[bytes, ...] = ()

    @property
    def creation_tokens(self) -> int:
        return self.write_5m_tokens + self.write_1h_tokens


@dataclass
class _Entry:
    expires_at: float
    ttl: float


class PrefixCache:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[bytes, _Entry] = {}
        self._writes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def _live(self, key: bytes, now: float) -> bool:
        entry = self._entries.get(key)
        if entry is None:
            return False
        if entry.expires_at <= now:
            del self._entries[key]
            return False
        return True

    def plan(self, scope: str, request: ParsedRequest, now: float | None = None) -> CachePlan:
        total = request.input_tokens
        min_tokens = request.model.min_cache_tokens
        segments = request.segments
        cumulative: list[int] = []
        running = 0
        for s in segments:
            running += s.tokens
            cumulative.append(running)
        effective = [(i, ttl) for i, ttl in request.breakpoints if cumulative[i] >= min_tokens]
        if not effective:
            return CachePlan(input_tokens=total, read_tokens=0, write_5m_tokens=0, write_1h_tokens=0)

        last = effective[-1][0]
        hashes: list[bytes] = []
        digest = hashlib.sha256(f"{scope}\x00{request.model.id}".encode()).digest()
        for s in segments[: last + 1]:
            digest = hashlib.sha256(
                digest + f"\x1f{s.role}\x1f{s.message_index}\x1f{s.canonical}".encode()).digest()
            hashes.append(digest)

        now = self._clock() if now is None else now
        hit = -1
        for index, _ in effective:
            for j in range(index, max(-1, index - LOOKBACK_BLOCKS), -1):
                if j > hit and self._live(hashes[j], now):
                    hit = j
                    break
        read = cumulative[hit] if hit >= 0 else 0
        boundary = read
        write = {"5m": 0, "1h": 0}
        writes: list[tuple[bytes, float]] = []
        refreshes: list[bytes] = []
        for index, ttl in effective:
            if index <= hit:
                if self._live(hashes[index], now):
                    refreshes.append(hashes[index])
                continue
            write[ttl] += cumulative[index] - boundary
            boundary = cumulative[index]
            writes.append((hashes[index], TTL_SECONDS[ttl]))
        if hit >= 0:
            refreshes.append(hashes[hit])
        return CachePlan(
            input_tokens=total - cumulative[last], read_tokens=read, write_5m_tokens=write["5m"],
            write_1h_tokens=write["1h"], writes=tuple(writes), refreshes=tuple(refreshes),
        )

    def commit(self, plan: CachePlan, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        for key in plan.refreshes:
            # A hit refreshes the entry's TTL at no cost.
            entry = self._entries.get(key)
            if entry is not None:
                entry.expires_at = max(entry.expires_at, now + entry.ttl)
        for key, ttl in plan.writes:
            self._entries[key] = _Entry(now + ttl, ttl)
            self._writes += 1
        if plan.writes and self._writes % SWEEP_EVERY_WRITES == 0:
            self._entries = {k: e for k, e in self._entries.items() if e.expires_at > now}
