"""A run's live progress: one snapshot (counts, rate, cost, lane state), watched by polling the database.

The same snapshot feeds `GET /api/v1/runs/{id}/events/` (Server-Sent Events, read by the admin's run
page) and `submit --follow` / `runs follow` at the command line, so what a person sees moving is the
same wherever they look.

A stream polls every RUN_EVENTS["POLL_SECONDS"] and writes an event only when the snapshot changed, a
comment when it has been quiet for KEEPALIVE_SECONDS (so proxies keep the connection), and closes after
MAX_SECONDS with a `retry:` hint: a listener holds a web thread (and a database connection) while its
stream is open, so no stream holds one forever; EventSource reconnects by itself, sending the last
event's id, and a stream that finds the client up to date says nothing until something changes.
When the run settles (complete, canceled or paused) the stream writes `end` and closes; a reconnect
after that `end` (Last-Event-ID) answers 204, which tells EventSource to stop.
"""

import hashlib
import json
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from django.conf import settings

from apps.core.ids import RunId
from apps.runs.models import Run
from apps.runs.serializers.outputs import RunProgressSerializer
from apps.runs.transitions import RUN_SETTLED
from config.api.sse import sse_comment, sse_event, sse_retry

# Blocks per second are measured over about this long: recent enough to see a stall within seconds,
# long enough that one batch of results does not read as a spike.
RATE_WINDOW_SECONDS = 10.0
PROGRESS, END = "progress", "end"


class RateWindow:
    """Blocks per second over the last RATE_WINDOW_SECONDS, from successive (moment, terminal blocks)
    samples: no query of its own. A count that goes down (a reseed starts a new pass) starts afresh."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS) -> None:
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, moment: float, done: int) -> None:
        if self.samples and done < self.samples[-1][1]:
            self.samples.clear()
        self.samples.append((moment, done))
        # Keep one sample at or before the window's start, so the span covers the whole window.
        while len(self.samples) > 2 and self.samples[1][0] <= moment - self.window:
            self.samples.popleft()

    def per_second(self) -> float | None:
        """None until two samples are apart in time."""
        if len(self.samples) < 2:
            return None
        (start, first), (end, last) = self.samples[0], self.samples[-1]
        return round((last - first) / (end - start), 2) if end > start else None


def run_progress(run: Run, *, rate: float | None = None) -> dict[str, Any]:
    """The run's live snapshot, as the events carry it (serializers/outputs.py, RunProgressSerializer)."""
    return dict(RunProgressSerializer(run, context={"rate": rate}).data)


def _digest(value: Any) -> str:
    encoded = json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def progress_event_id(progress: dict[str, Any]) -> str:
    """Names the run's state, so a reconnecting client that saw it is not sent it again. Rates are
    left out: the stream's own is measured afresh by each stream, and the lane's call rate decays by
    the second even when nothing happens."""
    lane = progress.get("lane")
    return _digest({**progress, "rate": None, "lane": {**lane, "rate_rpm": None} if lane else None})


def end_event_id(run: Run) -> str:
    """Names how the run settled, from its row alone (the 204 for a client that saw the end)."""
    return "end-" + _digest([run.status, run.current_pass, run.completed_blocks, run.failed_blocks,
                             run.canceled_blocks, str(run.cost_usd), run.finished_at])


def run_event_stream(run_id: RunId, *, last_event_id: str | None = None) -> Iterator[str]:
    """The frames of one stream: progress events on change, keep-alive comments, then `end` (the run
    settled) or a `retry:` hint (the stream's time is up)."""
    options = settings.RUN_EVENTS
    started = last_written = time.monotonic()
    rate = RateWindow()
    seen, shown_rate = last_event_id, None
    while True:
        run = Run.objects.select_related("key").filter(pk=run_id).first()
        if run is None:
            yield sse_comment("the run was deleted")
            return
        now = time.monotonic()
        rate.add(now, run.terminal_blocks)
        progress = run_progress(run, rate=rate.per_second())
        if run.status in RUN_SETTLED:
            yield sse_event(progress, event=END, event_id=end_event_id(run))
            return
        event_id = progress_event_id(progress)
        # The rate alone is news once both it and the last one shown are measured (a stalling run's
        # rate falling to 0); a first measurement of an unchanged run is not.
        rate_moved = None not in (shown_rate, progress["rate"]) and progress["rate"] != shown_rate
        if event_id != seen or rate_moved:
            yield sse_event(progress, event=PROGRESS, event_id=event_id)
            seen, shown_rate, last_written = event_id, progress["rate"], now
        if now - started >= options["MAX_SECONDS"]:
            yield sse_comment("this stream's time is up; reconnect with Last-Event-ID to go on")
            yield sse_retry(options["RETRY_MILLISECONDS"])
            return
        if now - last_written >= options["KEEPALIVE_SECONDS"]:
            yield sse_comment("keep-alive")
            last_written = now
        time.sleep(options["POLL_SECONDS"])
