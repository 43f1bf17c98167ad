"""What a lane learned, kept in PostgreSQL so it survives Redis (a flush, a new host, a deploy).

The gate (apps/lanes/gate.py) writes a lane's state here after a settle, at most every
`LANE_REMEMBER_SECONDS` per lane and process, and reads it back when a lane's Redis hash is missing
(lane.lua answers 'cold'), so the lane starts from its learned limits, latency and window instead of
`LANE_INITIAL_WINDOW`. Both run in a thread of their own (`remember_soon`, `recall_in_thread`): the
serving loop's event loop never waits for PostgreSQL. What is remembered is only a head start: the
next response's headers correct it.
"""

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connections
from django.utils import timezone

from apps.lanes.models import LaneMemory

if TYPE_CHECKING:
    from apps.lanes.gate import LaneRef

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Learned:
    """A lane's learned state, as lane.lua reports it after a settle and takes it back as a seed."""

    rpm: int = 0
    itpm: int = 0
    otpm: int = 0
    latency_ms: float = 0.0
    window: float = 0.0
    useful: int = 0

    @property
    def worth_keeping(self) -> bool:
        return bool(self.rpm or self.itpm or self.otpm or self.latency_ms)

    def seed_args(self) -> list[object]:
        return [self.rpm, self.itpm, self.otpm, round(self.latency_ms, 1), round(self.window, 2),
                self.useful]


NOTHING = Learned()


def remember(lane: "LaneRef", learned: Learned) -> None:
    """One upsert (INSERT ... ON CONFLICT DO UPDATE)."""
    LaneMemory.objects.bulk_create(
        [LaneMemory(key_id=lane.key_id, group=lane.group, rpm_limit=learned.rpm, itpm_limit=learned.itpm,
                    otpm_limit=learned.otpm, latency_ms=learned.latency_ms, window=learned.window,
                    useful_concurrency=learned.useful, updated_at=timezone.now())],
        update_conflicts=True, unique_fields=["key_id", "group"],
        update_fields=["rpm_limit", "itpm_limit", "otpm_limit", "latency_ms", "window",
                       "useful_concurrency", "updated_at"],
    )


def recall(lane: "LaneRef") -> Learned:
    row = LaneMemory.objects.filter(key_id=lane.key_id, group=lane.group).first()
    if row is None:
        return NOTHING
    return Learned(rpm=row.rpm_limit, itpm=row.itpm_limit, otpm=row.otpm_limit,
                   latency_ms=row.latency_ms, window=row.window, useful=row.useful_concurrency)


# Each runs in a thread of its own with a connection of its own, closed when done: a write every
# LANE_REMEMBER_SECONDS per lane is worth a connection's set-up, not a connection held open per thread.

def _remember_in_thread(lane: "LaneRef", learned: Learned) -> None:
    try:
        remember(lane, learned)
    except Exception:  # PostgreSQL unreachable: the lane goes on; only the head start is lost
        logger.warning("could not remember lane %s", lane.name, exc_info=True)
    finally:
        connections.close_all()


def _recall_in_thread(lane: "LaneRef") -> Learned:
    try:
        return recall(lane)
    except Exception:
        logger.warning("could not recall lane %s; it starts cautiously", lane.name, exc_info=True)
        return NOTHING
    finally:
        connections.close_all()


async def recall_in_thread(lane: "LaneRef") -> Learned:
    return await asyncio.to_thread(_recall_in_thread, lane)


class Remembering:
    """One serving process's writes: at most one per lane every `every` seconds, each in a thread
    (fire and forget; `drain` waits for those under way, for tests and a clean end)."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.last: dict[LaneRef, float] = {}
        self.pending: set[asyncio.Task[None]] = set()

    def due(self, lane: "LaneRef", now: float) -> bool:
        return now - self.last.get(lane, float("-inf")) >= self.every

    def remember_soon(self, lane: "LaneRef", learned: Learned, now: float) -> None:
        if not learned.worth_keeping or not self.due(lane, now):
            return
        self.last[lane] = now
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(_remember_in_thread, lane, learned))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def drain(self) -> None:
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)
