"""Message batches: what a batch holds, when each of its requests is answered, and how it ends.

All times are on the mock's clock (`MockClock.now()`), so `mock.advance()` moves batches on:

- a batch created at C with n requests answers request i (in request order) at C + delay * (i + 1) / n,
  `delay` being `batch_delay_ms` when it was created: the last one at C + delay, and the batch ends then;
- a request the `expire` directive holds back is never answered, so its batch waits for `expires_at`;
- at `expires_at` (C + `batch_expire_after_s`) every request not answered yet is `expired`, and it ends;
- a cancel at T makes it `canceling`: the request in progress (the next one due) still completes at its
  time, as the API's in-flight requests are not interruptible; then the batch ends and every request not
  answered is `canceled` (at once, when only held-back requests are left).

One heap holds the next event of every batch, so requests are answered in time order across batches:
`times=K` directives, the prefix cache and seeded random faults then behave the same however late the
mock gets round to them, and nothing is done before its time. What answers a request is the caller's
(`answer`, see batch_api.py): this module knows nothing of replies or HTTP.
"""

import asyncio
import hashlib
import heapq
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mock_provider.stats import RESULT_TYPES, Stats
from mock_provider.wire import dumps, new_id

STATUSES = ("in_progress", "canceling", "ended")


@dataclass(slots=True)
class BatchRequest:
    custom_id: str
    params: Any  # the request's `params`, validated only when it is answered; dropped once it is
    result_type: str | None = None  # succeeded | errored | canceled | expired, once decided
    line: bytes = b""  # its line of the results file, once decided


@dataclass(frozen=True)
class Answer:
    """What answering one request gave: its `result` object, or None when it is held back to expire."""

    result: dict[str, Any] | None
    fault: str | None = None  # e.g. "directive:status=500", "random:529", "directive:expire"
    usage: dict[str, Any] | None = None  # the tokens billed, for the stats


# (batch, request, the time it is answered at on the mock's clock) -> Answer
Answerer = Callable[["Batch", BatchRequest, float], Answer]


@dataclass(slots=True, eq=False)
class Batch:
    id: str
    api_key: str
    api_version: str  # the create call's anthropic-version, which its requests are validated under
    requests: list[BatchRequest]
    created_at: float  # on the mock's clock
    wall_offset: float  # wall-clock time = mock-clock time + this, fixed at creation
    delay: float  # seconds from creation to the last request
    expires_at: float
    answered: int = 0  # requests[:answered] are answered or held back
    held: int = 0  # of those, how many the `expire` directive held back
    cancel_initiated_at: float | None = None
    cancel_ends_at: float | None = None
    ended_at: float | None = None
    counts: Counter[str] = field(default_factory=Counter)  # by result type, filled when it ends
    results: list[bytes] = field(default_factory=list)  # the results file, line by line, once ended

    @property
    def status(self) -> str:
        if self.ended_at is not None:
            return "ended"
        return "canceling" if self.cancel_initiated_at is not None else "in_progress"

    def due(self, index: int) -> float:
        return self.created_at + self.delay * (index + 1) / len(self.requests)

    def next_event(self) -> float | None:
        if self.ended_at is not None:
            return None
        times = [self.expires_at]
        if self.cancel_ends_at is not None:
            times.append(self.cancel_ends_at)
        if self.answered < len(self.requests):
            times.append(self.due(self.answered))
        return min(times)

    def request_counts(self) -> dict[str, int]:
        # As on the API: everything is `processing` until the whole batch has ended.
        if self.ended_at is None:
            return {"processing": len(self.requests), **dict.fromkeys(RESULT_TYPES, 0)}
        return {"processing": 0, **{kind: self.counts[kind] for kind in RESULT_TYPES}}

    def timestamp(self, t: float | None) -> str | None:
        if t is None:
            return None
        moment = datetime.fromtimestamp(t + self.wall_offset, UTC)
        return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")

    def to_json(self, base_url: str) -> dict[str, Any]:
        ended = self.ended_at is not None
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": self.request_counts(),
            "ended_at": self.timestamp(self.ended_at),
            "created_at": self.timestamp(self.created_at),
            "expires_at": self.timestamp(self.expires_at),
            "archived_at": None,
            "cancel_initiated_at": self.timestamp(self.cancel_initiated_at),
            "results_url": f"{base_url}/v1/messages/batches/{self.id}/results" if ended else None,
        }


def result_line(custom_id: str, result: dict[str, Any]) -> bytes:
    return dumps({"custom_id": custom_id, "result": result}) + b"\n"


def _results_order(request: BatchRequest) -> bytes:
    # The API promises no order: a hash of custom_id gives one that is stable but not the request order,
    # so a client that relies on the order finds out here rather than in production.
    return hashlib.blake2b(request.custom_id.encode(), digest_size=8).digest()


class BatchStore:
    """Every batch of one mock server, with the schedule of their next events; owned by its event loop."""

    def __init__(self) -> None:
        self._batches: dict[str, Batch] = {}  # in creation order
        self._heap: list[tuple[float, int, Batch]] = []
        self._tiebreak = itertools.count()
        # Answering is done by whoever settles first (a handler, the background task): one at a time.
        self.lock = asyncio.Lock()
        # Set whenever the schedule may have moved earlier, so the background task looks again.
        self.wakeup = asyncio.Event()

    def __len__(self) -> int:
        return len(self._batches)

    def clear(self) -> None:
        self._batches.clear()
        self._heap.clear()
        self.wakeup.set()

    def _schedule(self, batch: Batch) -> None:
        when = batch.next_event()
        if when is not None:
            heapq.heappush(self._heap, (when, next(self._tiebreak), batch))
            self.wakeup.set()

    def create(self, *, api_key: str, api_version: str, requests: list[BatchRequest], now: float,
               wall: float, delay: float, expire_after: float) -> Batch:
        batch = Batch(id=new_id("msgbatch_"), api_key=api_key, api_version=api_version, requests=requests,
                      created_at=now, wall_offset=wall - now, delay=delay, expires_at=now + expire_after)
        self._batches[batch.id] = batch
        self._schedule(batch)
        return batch

    def get(self, api_key: str, batch_id: str) -> Batch | None:
        """A batch of this key's; another key's batches do not exist for it (like another workspace's)."""
        batch = self._batches.get(batch_id)
        return batch if batch is not None and batch.api_key == api_key else None

    def newest_first(self, api_key: str) -> list[Batch]:
        return [b for b in reversed(self._batches.values()) if b.api_key == api_key]

    def cancel(self, batch: Batch, now: float) -> None:
        if batch.cancel_initiated_at is not None or batch.ended_at is not None:
            return
        batch.cancel_initiated_at = now
        in_progress = batch.answered < len(batch.requests)
        batch.cancel_ends_at = batch.due(batch.answered) if in_progress else now
        self._schedule(batch)

    def delete(self, batch: Batch) -> None:
        self._batches.pop(batch.id, None)

    def next_due(self) -> float | None:
        """When the earliest event is due (possibly a stale entry: settling sooner is harmless)."""
        return self._heap[0][0] if self._heap else None

    def step(self, now: float, answer: Answerer, stats: Stats) -> bool:
        """Do the earliest event due by `now`; False when there is none."""
        while self._heap and self._heap[0][0] <= now:
            when, _, batch = heapq.heappop(self._heap)
            if self._batches.get(batch.id) is not batch or batch.next_event() != when:
                continue  # deleted, reset, or rescheduled by a cancel: a newer entry stands for it
            self._advance(batch, when, answer, stats)
            self._schedule(batch)
            return True
        return False

    def _advance(self, batch: Batch, when: float, answer: Answerer, stats: Stats) -> None:
        total = len(batch.requests)
        if batch.answered < total and batch.due(batch.answered) <= when:
            self._answer(batch, batch.requests[batch.answered], when, answer, stats)
            batch.answered += 1
            if batch.answered == total and not batch.held:
                self._end(batch, when, stats)
        elif batch.cancel_ends_at is not None and batch.cancel_ends_at <= batch.expires_at:
            self._end(batch, batch.cancel_ends_at, stats)
        else:
            self._end(batch, batch.expires_at, stats)

    def _answer(self, batch: Batch, request: BatchRequest, when: float, answer: Answerer,
                stats: Stats) -> None:
        outcome = answer(batch, request, when)
        if outcome.fault:
            stats.batch_faults[outcome.fault] += 1
        if outcome.result is None:
            batch.held += 1
            return
        request.params = None
        request.result_type = outcome.result["type"]
        request.line = result_line(request.custom_id, outcome.result)
        stats.batch_result(request.result_type, usage=outcome.usage)

    def _end(self, batch: Batch, when: float, stats: Stats) -> None:
        left_over = "canceled" if batch.cancel_initiated_at is not None else "expired"
        for request in batch.requests:
            if request.result_type is None:
                request.params = None
                request.result_type = left_over
                request.line = result_line(request.custom_id, {"type": left_over})
                stats.batch_result(left_over)
            batch.counts[request.result_type] += 1
        batch.results = [r.line for r in sorted(batch.requests, key=_results_order)]
        batch.ended_at = when
        stats.batches["ended"] += 1
