"""What every serving process posts about its use of a lane, for the other processes and for people.

Per owner: the blocks it has in calls on the lane, how many it could use there, and how many wait
ready to start. Per process: whether the lane refused it lately (the lane is saturated: its rate or
window is what binds), and whether the process's own in-flight ceiling is what holds the lane's runs
back (`ceiling_bound`, with what sets that ceiling).

One hash per lane (`conveyor:lane-board:<key>:<group>`), one field per serving process; each value
carries its own expiry, so a process that dies stops posting and its counts stop counting within
`ttl` without any sweep (readers skip expired values; writers delete the ones they see). The hash
itself expires when no process posts any more. A serving loop writes its field and reads the whole
hash (and the lane's concurrency) in one pipeline per turn (apps/runs/serving/lanewide.py)."""

import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from apps.lanes.gate import LaneRef

BOARD_PREFIX = "conveyor:lane-board:"
# The hash expires this long after the last post (each post's own expiry is much shorter).
BOARD_KEY_TTL_MS = 60_000


def board_key(lane: LaneRef) -> str:
    return f"{BOARD_PREFIX}{lane.name}"


@dataclass(frozen=True)
class OwnerUse:
    # Blocks of the owner's runs in calls on the lane.
    held: int = 0
    # Blocks it could have in calls there (its runs' parallelism and work, as the process sees them).
    demand: int = 0
    # Blocks ready to start that the process would start if the lane let it.
    waiting: int = 0

    def __add__(self, other: "OwnerUse") -> "OwnerUse":
        return OwnerUse(self.held + other.held, self.demand + other.demand, self.waiting + other.waiting)


@dataclass(frozen=True)
class Post:
    worker: str
    expires_ms: int
    owners: dict[str, OwnerUse] = field(default_factory=dict)
    # The lane refused this process lately (window or rate): what is in flight is all it allows.
    saturated: bool = False
    # The process's in-flight ceiling while it is what holds the lane's runs back; 0 otherwise.
    ceiling_bound: int = 0
    # What sets that ceiling: SERVE_MAX_IN_FLIGHT or "open files".
    bound_by: str = ""

    def encode(self) -> str:
        return json.dumps({"exp": self.expires_ms, "sat": int(self.saturated), "cb": self.ceiling_bound,
                           "by": self.bound_by,
                           "o": {owner: [u.held, u.demand, u.waiting] for owner, u in self.owners.items()}})

    @classmethod
    def decode(cls, worker: str, raw: bytes | str) -> "Post | None":
        try:
            data = json.loads(raw)
            return cls(worker=worker, expires_ms=int(data["exp"]), saturated=bool(data.get("sat")),
                       ceiling_bound=int(data.get("cb", 0)), bound_by=str(data.get("by", "")),
                       owners={str(o): OwnerUse(*map(int, v)) for o, v in data.get("o", {}).items()})
        except (ValueError, TypeError, KeyError):
            return None


def read_posts(raw: dict[Any, Any], now_ms: float) -> tuple[list[Post], list[str]]:
    """The live posts of a board hash as read (bytes or str), and the fields that expired."""
    live, expired = [], []
    for name, value in raw.items():
        worker = name.decode() if isinstance(name, bytes) else str(name)
        post = Post.decode(worker, value)
        if post is None or post.expires_ms <= now_ms:
            expired.append(worker)
        else:
            live.append(post)
    return live, expired


def lane_concurrency(useful: Any, cwnd: Any, default: float) -> float:
    """How many calls the lane can use at once: its useful concurrency (rate limit x latency, with
    headroom) when the lane has measured it, else its concurrency window, else `default`."""
    for value in (useful, cwnd):
        try:
            number = float(value.decode() if isinstance(value, bytes) else value)
        except (TypeError, ValueError, AttributeError):
            continue
        if number > 0:
            return number
    return default


def lane_ceiling_bound(client: redis.Redis, lane: LaneRef) -> Post | None:
    """A live post saying a process's ceiling holds this lane's runs back (the largest ceiling among
    them), or None."""
    posts, _ = read_posts(client.hgetall(board_key(lane)), time.time() * 1000)
    bound = [post for post in posts if post.ceiling_bound > 0]
    return max(bound, key=lambda post: post.ceiling_bound) if bound else None
