"""How many calls a serving process holds in flight: by Little's law, not by a constant.

A lane can use its rate limit times its latency (plus headroom) calls at once: its useful
concurrency, which the lane measures (apps/lanes: the hash field `useful`, else its window `cwnd`).
A process serves as many calls as the lanes its runs use can take, so its ceiling is the sum of
those lanes' concurrency, bounded by what the process can hold (its open-files limit less a reserve:
each call is a socket, `process.open_files_capacity`) and, when an operator set one on purpose, by
SERVE_MAX_IN_FLIGHT. Recomputed every turn from the last view of the lanes."""

import math
from collections.abc import Iterable
from dataclasses import dataclass

from apps.lanes.gate import LaneRef
from apps.lanes.limits import Limits

LANES = "lanes"
OPERATOR = "SERVE_MAX_IN_FLIGHT"
OPEN_FILES = "open files"


@dataclass(frozen=True)
class Ceiling:
    calls: int
    # What sets it: the lanes (LANES), the operator's bound (OPERATOR) or the open files (OPEN_FILES).
    bound_by: str

    @property
    def host_bound(self) -> bool:
        """Set by the host, not by what the lanes can use: when it binds, more workers or hosts (or a
        higher bound) would serve more."""
        return self.bound_by != LANES


def process_ceiling(lane_concurrency: Iterable[float], *, operator: int | None, open_files: int) -> Ceiling:
    """The smallest of: the lanes' concurrency summed, the operator's bound, the open files."""
    candidates = [(math.ceil(sum(lane_concurrency)), LANES), (open_files, OPEN_FILES)]
    if operator:
        candidates.append((operator, OPERATOR))
    calls, bound_by = min(candidates, key=lambda c: c[0])
    return Ceiling(calls=max(1, calls), bound_by=bound_by)


def default_concurrency(limits: Limits, *, initial_window: int, window_after_headers: int) -> int:
    """What a lane no process has used yet starts with (as lane.lua does): its window once limits are
    known (the key's tier or explicit limits), else the cautious initial window."""
    return window_after_headers if limits.known else initial_window


def calls_per_key(lanes: dict[LaneRef, float], *, ceiling: int) -> dict[int, int]:
    """How many calls each key's clients must be able to hold at once: its lanes' concurrency, within
    the ceiling."""
    per_key: dict[int, float] = {}
    for lane, concurrency in lanes.items():
        per_key[lane.key_id] = per_key.get(lane.key_id, 0.0) + concurrency
    return {key_id: min(ceiling, math.ceil(calls)) for key_id, calls in per_key.items()}
