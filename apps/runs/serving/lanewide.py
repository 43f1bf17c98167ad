"""Fair share of a lane across every serving process and host.

Each loop splits its own slots among owners (fairshare.py), but a lane (a key and model group) is
shared by every process on every host: an owner whose runs one loop serves, and another's served
by another loop, would split the lane by how fast each loop asks, not equally. So each loop posts on
the lane's board (apps/lanes/board.py), every turn, per owner: the blocks it has in calls on the
lane, how many it could use, how many wait ready; it reads every other process's posts back in the
same pipeline. Before it starts an owner's calls on a lane it works out each owner's lane-wide share
(`fair_room`): the lane's capacity split equally among owners by max-min water-filling over their
lane-wide demand, so an owner that wants less leaves the rest to the others (work-conserving). A
start that would take an owner above its share while another owner waiting on that lane is below
its own is refused (`fair_share`): the room goes to the one below.

The lane's capacity here is its useful concurrency (board.lane_concurrency) while the lane has room,
and, when it is saturated (some process was refused by its window or a rate bucket lately), what it
admits: the most it held in flight lately, never more than its rate limit times its latency (the
useful concurrency without its headroom). That is what owners share: a share of more (the headroom,
or a peak that the calls in flight of a rate-bound lane reach only now and then) lets the owners who
hold their share take the difference from the one who waits below its own.

An owner holding less than LANE_FAIR_RESERVE of the lane (at least one call) is never refused: a
view a moment old must not stop anyone from starting something."""

import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from apps.lanes.board import BOARD_KEY_TTL_MS, OwnerUse, Post, board_key, lane_concurrency, read_posts
from apps.lanes.gate import LaneRef
from apps.runs.serving import capacity, fairshare
from apps.runs.serving.pool import lanes_of
from apps.runs.serving.slots import LoopState, RunSlot

logger = logging.getLogger(__name__)

EPSILON = 1e-9
# A lane that refused a process within this long is saturated; a ceiling that bound within this long
# is posted as binding (so neither flickers between two turns).
RECENT_SECONDS = 1.0

Uses = dict[str, OwnerUse]


@dataclass
class LaneView:
    """A lane as the last sync saw it: its concurrency and the other processes' live posts."""

    concurrency: float
    # The calls in flight the lane's limits admit at its latency (its useful concurrency less the
    # headroom); 0 while the lane has not measured it.
    sustained: float = 0.0
    others: Uses = field(default_factory=dict)
    # Another process was refused by the lane lately.
    saturated: bool = False
    # The most calls in flight on the lane lately, every process's (lane_capacity).
    peak_held: float = 0.0
    peak_at: float = float("-inf")


def lane_shares(capacity: float, demand: dict[str, float]) -> dict[str, float]:
    """Each owner's share of the lane: equal, none above its demand, what one leaves to the rest."""
    return fairshare.waterfill(capacity, demand, dict.fromkeys(demand, 1.0))


def fair_room(owner: str, uses: Uses, *, capacity: float, reserve: float) -> int | None:
    """How many more blocks `owner` may start on the lane now by lane-wide fair share, from every
    process's uses of it (`uses`, this one's included) and what the lane can hold (`capacity`);
    None: fair share does not limit it.

    Shares are fractions and calls are whole: with 10.5 each, an owner at 10 is below its share and
    one at 11 is not above its own by a whole call. So an owner waiting anywhere below its share is
    starved, and while one is, the others may hold up to their share rounded up. (Rounded down, with
    "starved" only a whole call below, an owner who kept losing the races for the lane's room could
    sit a call below its share while the others sat a call above: a tenth of a share at ~10 calls
    each.)"""
    shares = lane_shares(capacity, {o: float(max(u.demand, u.held)) for o, u in uses.items()})
    starved = any(other != owner and u.waiting > 0 and u.held + EPSILON < shares.get(other, 0.0)
                  for other, u in uses.items())
    if not starved:
        return None
    allowed = max(shares.get(owner, 0.0), float(max(1, math.ceil(reserve * capacity))))
    return max(0, math.ceil(allowed - EPSILON) - uses.get(owner, OwnerUse()).held)


def lane_capacity(view: "LaneView", uses: Uses, *, saturated: bool, now: float) -> float:
    """What the owners share: the lane's concurrency while it has room; once it refuses (saturated),
    the most it held in flight lately, every process's calls counted (what it allows)."""
    total = float(sum(u.held for u in uses.values()))
    if total >= view.peak_held or now - view.peak_at > RECENT_SECONDS:
        view.peak_held, view.peak_at = total, now
    if saturated:
        # Never more than what the limits admit: the peak of a rate-bound lane's calls in flight runs
        # above their mean (calls start as the buckets refill and end as their latency varies), and
        # other processes' counts are up to a sync old (their calls that just ended still count).
        bounds = [b for b in (view.concurrency, view.sustained) if b > 0]
        return min([view.peak_held, *bounds])
    return max(view.concurrency, total)


def sustained_concurrency(useful: Any) -> float:
    """The calls in flight a lane's limits admit at its latency: its useful concurrency (lane.lua:
    rate x latency x LANE_CONCURRENCY_HEADROOM) without the headroom; 0 when it has none yet."""
    number = lane_concurrency(useful, None, 0.0)
    return number / settings.CONVEYOR["LANE_CONCURRENCY_HEADROOM"] if number > 0 else 0.0


def owner_key(owner_id: Any) -> str:
    return str(owner_id)


def my_uses(state: LoopState) -> dict[str, Uses]:
    """What this process posts per lane and owner: blocks in calls, what it could use (each run's
    demand, within its share of this process's ceiling), and how many of those it has not started."""
    contenders = state.contenders()
    targets = fairshare.targets(state.ceiling, contenders) if contenders else {}
    by_run = {c.run_id: c for c in contenders}
    uses: dict[str, dict[str, OwnerUse]] = defaultdict(dict)
    for slot in state.slots.values():
        lane, owner = slot.ctx.lane.name, owner_key(slot.ctx.owner_id)
        contender = by_run.get(slot.run_id)
        demand = slot.in_flight
        waiting = 0
        if contender is not None:
            demand = max(slot.in_flight, min(contender.demand, math.ceil(targets.get(slot.run_id, 0.0))))
            # Blocks it would have in calls and does not: ready here, or on their way (claimed in the
            # next round), so an owner whose claim is late still counts as waiting.
            waiting = demand - slot.in_flight
        uses[lane][owner] = uses[lane].get(owner, OwnerUse()) + OwnerUse(slot.in_flight, demand, waiting)
    return uses


def merged(mine: Uses, others: Uses) -> Uses:
    owners = set(mine) | set(others)
    return {o: mine.get(o, OwnerUse()) + others.get(o, OwnerUse()) for o in owners}


class LaneBoard:
    """A loop's posts on the lanes' boards and what it last read back: one pipeline per sync (at most
    every `sync_seconds`), posts that expire after `ttl_seconds`."""

    def __init__(self, redis_client: Any, *, worker: str, ttl_seconds: float, sync_seconds: float) -> None:
        self.redis = redis_client
        self.worker = worker
        self.ttl_seconds = ttl_seconds
        self.sync_seconds = sync_seconds
        self.views: dict[str, LaneView] = {}
        self.next_sync = 0.0
        # Fields of dead processes seen on each board, deleted with the next post.
        self.expired: dict[str, list[str]] = {}
        self.posted: dict[str, LaneRef] = {}

    def due(self, now: float) -> bool:
        return now >= self.next_sync

    async def sync(self, posts: dict[LaneRef, Post], now: float) -> None:
        """Post this process's uses of each lane and read every process's posts and the lanes'
        concurrency back, in one pipeline. A Redis error keeps the last views (and is logged)."""
        self.next_sync = now + self.sync_seconds
        if not posts:
            return
        pipe = self.redis.pipeline(transaction=False)
        reads: list[tuple[LaneRef, int]] = []
        n = 0
        for lane, post in posts.items():
            key = board_key(lane)
            pipe.hset(key, self.worker, post.encode())
            n += 1
            gone = self.expired.pop(lane.name, [])
            if gone:
                pipe.hdel(key, *gone)
                n += 1
            pipe.pexpire(key, BOARD_KEY_TTL_MS)
            pipe.hgetall(key)
            pipe.hmget(lane.hash_key, "useful", "cwnd")
            reads.append((lane, n + 1))
            n += 3
        try:
            results = await pipe.execute()
        except Exception:
            logger.warning("lane boards: could not post or read", exc_info=True)
            return
        now_ms = time.time() * 1000
        self.posted.update({lane.name: lane for lane in posts})
        for lane, at in reads:
            live, expired = read_posts(results[at], now_ms)
            others = [p for p in live if p.worker != self.worker]
            self.expired[lane.name] = [w for w in expired if w != self.worker]
            uses: Uses = {}
            for post in others:
                uses = merged(uses, post.owners)
            useful, cwnd = results[at + 1]
            view = self.views.get(lane.name)
            if view is None:
                view = self.views[lane.name] = LaneView(concurrency=0.0)
            view.concurrency = lane_concurrency(useful, cwnd, view.concurrency)
            view.sustained = sustained_concurrency(useful)
            view.others, view.saturated = uses, any(p.saturated for p in others)

    async def withdraw(self) -> None:
        """Take this process's posts down (a loop that ends stops counting at once)."""
        if not self.posted:
            return
        pipe = self.redis.pipeline(transaction=False)
        for lane in self.posted.values():
            pipe.hdel(board_key(lane), self.worker)
        try:
            await pipe.execute()
        except Exception:  # they expire on their own
            logger.warning("lane boards: could not withdraw", exc_info=True)
        self.posted = {}


def add_held(uses: dict[str, Uses], slot: RunSlot, started: int) -> None:
    """Count blocks this loop just started in its own uses (so the next start sees them at once)."""
    if started <= 0:
        return
    lane, owner = slot.ctx.lane.name, owner_key(slot.ctx.owner_id)
    lane_uses = uses.setdefault(lane, {})
    lane_uses[owner] = lane_uses.get(owner, OwnerUse()) + OwnerUse(held=started)


def posts_of(state: LoopState, *, worker: str, now: float, expires_ms: int) -> dict[LaneRef, Post]:
    """This loop's post for each lane its runs use: its uses per owner, whether the lane refused it
    lately, and whether its ceiling held the lane's runs back lately (and what sets that ceiling)."""
    uses = my_uses(state)
    lanes = {route.lane.name: route.lane for slot in state.slots.values() for route in lanes_of(slot)}
    posts = {}
    for name, ref in lanes.items():
        lane = state.lanes.get(name)
        bound = lane is not None and now - lane.ceiling_bound_at < RECENT_SECONDS
        posts[ref] = Post(worker=worker, expires_ms=expires_ms, owners=uses.get(name, {}),
                          saturated=lane is not None and now - lane.refused_at < RECENT_SECONDS,
                          ceiling_bound=state.ceiling if bound else 0,
                          bound_by=state.ceiling_by if bound else "")
    return posts


def concurrency_in_use(state: LoopState, board: LaneBoard | None, *, initial_window: int,
                       window_after_headers: int) -> dict[LaneRef, float]:
    """The concurrency of each lane the loop's active runs use: as the lanes' boards last read it,
    else what a fresh lane starts with."""
    lanes = {route.lane: route.limits for slot in state.slots.values() if not slot.ended
             for route in lanes_of(slot)}
    result = {}
    for lane, limits in lanes.items():
        view = board.views.get(lane.name) if board is not None else None
        if view is not None and view.concurrency > 0:
            result[lane] = view.concurrency
        else:
            result[lane] = float(capacity.default_concurrency(
                limits, initial_window=initial_window, window_after_headers=window_after_headers))
    return result
