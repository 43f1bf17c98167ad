"""Starting calls: which run's ready packs go out next, and whether their lane lets them.

While the process has free slots (its ceiling), runs are taken in fair-share order (fairshare.py):
first each run up to its share, the furthest below it first; then slots left over to anyone with
packs ready, the longest waiting first (work-conserving). A run's next packs ask its lane in one
round trip (apps.lanes.gate: rate limits, the concurrency window, the run's parallelism); those
granted start as calls, the first refused says why and for how long. A lane that must wait takes no
slot: its runs are skipped, and, when the wait is long, what they hold is given back. Starts are
paced (`pace`), so slots freed together refill over a moment instead of moving in waves."""

import asyncio
import logging
import math
import time
from dataclasses import replace

from django.conf import settings

from apps.lanes.gate import Grant, LaneGate, LaneRef, Need, Settlements
from apps.runs.services.claiming import lease_seconds
from apps.runs.services.decisions import KEY_PAUSE_CAUSES
from apps.runs.serving import capacity, fairshare, lanewide, pool
from apps.runs.serving.calls import PackCaller, call_need
from apps.runs.serving.context import RunContext
from apps.runs.serving.rounds import RELEASE_AFTER_SECONDS
from apps.runs.serving.slots import LaneSlot, LoopState, Pack, Release, RunSlot

logger = logging.getLogger(__name__)

# How long to leave a lane alone after "no room" (its window or the run's parallelism is full) when
# no call of ours on it has finished to say there is room again (the calls may be on other hosts).
ROOM_RECHECK_SECONDS = 0.1
# Starts are paced at this many times the rate a run's parallelism can sustain (parallelism over the
# lane's latency), with bursts of at most an eighth of its parallelism: slots freed all at once are
# refilled over a moment instead of in one instant, so calls do not move in waves that come back
# together, every latency, and queue behind each other in the loop.
PACE_HEADROOM = 2.0
PACE_BURST_SHARE = 1 / 8
# How long a lane is left alone when Redis (its gate) cannot be reached.
GATE_DOWN_SECONDS = 1.0


def pace(slot: RunSlot, lane: LaneSlot, now: float) -> int:
    """How many blocks the run may start now by its pacing (no limit before the lane's first call
    here has ended); none: the run waits (room_at) until one may."""
    if lane.latency <= 0:
        return 1 << 30
    rate = PACE_HEADROOM * slot.parallelism / lane.latency
    burst = max(1.0, slot.parallelism * PACE_BURST_SHARE)
    slot.pace_tokens = min(burst, slot.pace_tokens + (now - slot.pace_at) * rate)
    slot.pace_at = now
    if slot.pace_tokens >= 1:
        return int(slot.pace_tokens)
    slot.room_at = now + (1 - slot.pace_tokens) / rate
    return 0


def lane_refused(state: LoopState, slot: RunSlot, reason: str, wait: float, now: float,
                 lane_ref: LaneRef | None = None) -> None:
    """What a refusal by the lane (`lane_ref`; default the run's first) means for this loop.
    `parallelism`: only this run waits a moment (its calls on other workers count too). `window`: the
    lane is full; a call of ours ending reopens it, others' are polled for. Anything else (a 429
    hold, overload, a bucket): the lane shuts for the wait, and if that is long, every run on it
    whose other keys' lanes are shut as long gives back what it holds."""
    if reason == "parallelism":
        slot.room_at = now + ROOM_RECHECK_SECONDS
        return
    ref = lane_ref if lane_ref is not None else slot.ctx.lane
    lane = state.lanes.setdefault(ref.name, LaneSlot())
    if reason == "window" or reason.startswith("rate_"):
        lane.refused_at = now  # what is in flight is all the lane allows now (lanewide.py)
    if reason == "window":
        lane.closed_until, lane.reason = now + ROOM_RECHECK_SECONDS, reason
        return
    lane.closed_until, lane.reason = now + max(wait, 0.01), reason
    if wait > RELEASE_AFTER_SECONDS:
        for other in state.slots.values():
            if pool.uses_lane(other, ref) and pool.all_closed(state, other, now,
                                                              longer_than=RELEASE_AFTER_SECONDS):
                state.give_back(other)


class CallStarter:
    """Starts the loop's calls and takes them back when they end. Every call is an asyncio task; its
    end wakes the loop (`wake`) and holds its results for the next write."""

    def __init__(self, *, state: LoopState, gate: LaneGate, caller: PackCaller, settlements: Settlements,
                 wake: asyncio.Event, calls: set[asyncio.Task[None]] | None = None,
                 board: lanewide.LaneBoard | None = None) -> None:
        self.state = state
        # The lanes' boards (lane-wide fair share across processes); None: this loop's slots alone.
        self.board = board
        self.gate = gate
        self.caller = caller
        self.settlements = settlements
        self.wake = wake
        self.calls: set[asyncio.Task[None]] = calls if calls is not None else set()

    def give_back_stale(self, now: float) -> None:
        for slot in self.state.slots.values():
            self.state.releases.extend(slot.give_back_stale(now))

    async def start_calls(self) -> None:
        state = self.state
        contenders = state.contenders()
        if not contenders:
            return
        shares = fairshare.targets(state.ceiling, contenders)
        uses = lanewide.my_uses(state) if self.board is not None else {}
        passes = ((True, fairshare.order(contenders, shares)),
                  (False, sorted(contenders, key=lambda c: c.waiting_since)))
        for fair, ordered in passes:
            for contender in ordered:
                if state.in_flight >= state.ceiling:
                    self._note_ceiling_bound(contenders, time.monotonic())
                    return
                slot = state.slots.get(contender.run_id)
                if slot is None or slot.ended:
                    continue
                # Never past the run's parallelism (the gate would refuse it anyway).
                limit = contender.demand
                if fair:
                    limit = min(limit, math.ceil(shares.get(contender.run_id, 0)))
                while (slot.ready and slot.in_flight < limit and state.in_flight < state.ceiling
                       and slot.room_at <= time.monotonic()):
                    room = min(limit - slot.in_flight, state.ceiling - state.in_flight)
                    room = self._fair_share_room(slot, room, uses, time.monotonic())
                    if room <= 0:
                        break
                    before = slot.in_flight
                    started = await self._start_some(slot, room)
                    lanewide.add_held(uses, slot, slot.in_flight - before)
                    if not started:
                        break

    def _fair_share_room(self, slot: RunSlot, room: int, uses: dict[str, lanewide.Uses], now: float) -> int:
        """`room` less what lane-wide fair share allows the run's owner on its lane (lanewide.py); 0:
        refused (`fair_share`), the run waits a moment while an owner below its share catches up."""
        if self.board is None:
            return room
        name = slot.ctx.lane.name
        view = self.board.views.get(name)
        lane = self.state.lane_of(slot)
        saturated = (view is not None and view.saturated) or now - lane.refused_at < lanewide.RECENT_SECONDS
        if view is None or (view.concurrency <= 0 and not saturated):
            return room
        lane_uses = lanewide.merged(uses.get(name, {}), view.others)
        allowed = lanewide.fair_room(
            lanewide.owner_key(slot.ctx.owner_id), lane_uses,
            capacity=lanewide.lane_capacity(view, lane_uses, saturated=saturated, now=now),
            reserve=settings.CONVEYOR["LANE_FAIR_RESERVE"])
        if allowed is None:
            return room
        if allowed <= 0:
            slot.room_at = now + ROOM_RECHECK_SECONDS
            self.state.fair_share_refusals += 1
            return 0
        return min(room, allowed)

    def _note_ceiling_bound(self, contenders: list[fairshare.Contender], now: float) -> None:
        """The ceiling is full: if it is the host's (not the lanes'), mark the lanes of runs that have
        ready blocks, room under their parallelism and an open lane: the ceiling holds them back."""
        state = self.state
        if state.ceiling_by == capacity.LANES:
            return
        for contender in contenders:
            slot = state.slots.get(contender.run_id)
            if slot is None or slot.ended or not slot.ready or slot.in_flight >= contender.demand:
                continue
            lane = state.lane_of(slot)
            if lane.closed_until <= now and slot.room_at <= now:
                lane.ceiling_bound_at = now

    async def _start_some(self, slot: RunSlot, room: int) -> bool:
        """Start the slot's next ready packs up to `room` blocks (at least one pack): each model's
        packs ask the routes of the run's pool (pool.py) in turn, each route's lane in one round
        trip, and what one lane refuses (it says why and for how long) goes on to the next. False
        when some pack found no lane to take it, or no call may start now."""
        state = self.state
        now = time.monotonic()
        if pool.all_closed(state, slot, now):
            return False
        room = min(room, pace(slot, pool.pace_lane(state, slot), now))
        if room <= 0:
            return False
        packs = self._take_ready(slot, room, now)
        if not packs:
            return True
        alone = slot.ctx.routes_for(0)
        if len(slot.ctx.routes) <= 1 and len(alone) == 1 and not pool.is_cold(slot, alone[0]):
            # One key, one model (most runs): its lane, as before pools.
            started = {id(pack) for pack in await self._offer(slot, alone[0], packs, set())}
            return self._put_back(slot, packs, [pack for pack in packs if id(pack) not in started])
        concurrency = ({name: view.concurrency for name, view in self.board.views.items()}
                       if self.board is not None and slot.ctx.routes and len(slot.ctx.routes[0]) > 1
                       else None)
        left: list[Pack] = []
        for model_index in sorted({pack.model_index for pack in packs}):
            waiting = [pack for pack in packs if pack.model_index == model_index]
            routes = pool.candidates(state, slot, model_index, time.monotonic(), concurrency)
            refused: set[int] = set()
            # First each warm route its share by room (pool.assign); then what a lane refused goes
            # to the routes that have not refused, best first; a cold key takes one pack (warming).
            for route, share in pool.assign(slot, routes, waiting, concurrency):
                if slot.ended or state.stopping:
                    break
                started = {id(pack) for pack in await self._offer(slot, route, share, refused)}
                waiting = [pack for pack in waiting if id(pack) not in started]
            for route in routes:
                if not waiting or slot.ended or state.stopping or route.key_id in refused:
                    continue
                cold = pool.is_cold(slot, route)
                if cold and route.key_id in slot.warming:
                    continue
                offered = waiting[:1] if cold else waiting
                started = {id(pack) for pack in await self._offer(slot, route, offered, refused)}
                if cold and started:
                    slot.warming.add(route.key_id)
                waiting = [pack for pack in waiting if id(pack) not in started]
            left.extend(waiting)
        return self._put_back(slot, packs, left)

    def _put_back(self, slot: RunSlot, packs: list[Pack], left: list[Pack]) -> bool:
        """The packs no lane took go back to the front of the slot's queue (given back if the run
        ended or the loop is stopping); True when every pack started."""
        if slot.ended or self.state.stopping:
            self.state.releases.extend(Release.of(slot.run_id, pack) for pack in left)
            return False
        if len(left) < len(packs):
            slot.waiting_since = time.monotonic()
        if not left:
            return True
        slot.ready.extendleft(reversed(left))
        return False

    async def _offer(self, slot: RunSlot, route: RunContext, packs: list[Pack], refused: set[int]
                     ) -> list[Pack]:
        """Ask the route's lane for these packs; the packs it started. A refusal shuts the lane for
        its wait (lane_refused) and marks the route refused for this turn; `parallelism` (the run's
        own bound) marks every route."""
        started, refusal = await self._ask_lane(slot, route, packs)
        if started is None:  # Redis unreachable: its lane is shut a moment
            refused.add(route.key_id)
            return []
        if refusal is not None:
            refused.add(route.key_id)
            lane_refused(self.state, slot, refusal.reason, refusal.wait_seconds, time.monotonic(),
                         lane_ref=route.lane)
            if refusal.reason == "parallelism":
                refused.update(r.key_id for r in pool.routes_of(slot))
        return started

    async def _ask_lane(self, slot: RunSlot, route: RunContext, packs: list[Pack]
                        ) -> tuple[list[Pack] | None, Grant | None]:
        """Ask one route's lane for these packs in one round trip and start those it grants. Returns
        the packs started (None: the gate could not be reached) and the first refusal, if any."""
        state = self.state
        needs = [call_need(route, pack.blocks) for pack in packs]
        try:
            if self.settlements:  # calls that ended while we were busy: their room first
                await self.settlements.flush(time.time())
            grants = await self.gate.try_acquire_many(
                route.lane, run_id=slot.run_id, needs=needs, parallelism=slot.parallelism,
                limits=route.limits, now=time.time(), lease_seconds=lease_seconds())
        except Exception:
            logger.warning("lane %s: gate unavailable", route.lane.name, exc_info=True)
            lane = state.lanes.setdefault(route.lane.name, LaneSlot())
            lane.closed_until, lane.reason = time.monotonic() + GATE_DOWN_SECONDS, "gate unavailable"
            return None, None
        granted = [(pack, grant, need) for pack, grant, need in zip(packs, grants, needs, strict=False)
                   if grant.granted]
        if slot.ended or state.stopping:
            # The run ended (or the loop began stopping) while we asked: no call goes out.
            for _pack, grant, need in granted:
                await self.gate.cancel(route.lane, grant, run_id=slot.run_id, need=need,
                                       limits=route.limits, now=time.time())
            return [], None
        for pack, grant, need in granted:
            self._start(slot, route, pack, grant, need)
        refusal = grants[len(granted)] if len(granted) < len(packs) else None
        return [pack for pack, _, _ in granted], refusal

    def _take_ready(self, slot: RunSlot, room: int, now: float) -> list[Pack]:
        """The slot's next packs up to `room` blocks (at least one pack). A pack held past its start-by
        goes back instead: a call now could outlive the lease and be made twice."""
        packs: list[Pack] = []
        taken = 0
        while slot.ready and (not packs or taken + slot.ready[0].size <= room):
            pack = slot.ready.popleft()
            if now > pack.start_by:
                self.state.releases.append(Release.of(slot.run_id, pack))
                continue
            packs.append(pack)
            taken += pack.size
        return packs

    def _start(self, slot: RunSlot, route: RunContext, pack: Pack, grant: Grant, need: Need) -> None:
        slot.in_flight += pack.size
        slot.key_in_flight[route.key_id] += pack.size
        self.state.in_flight += pack.size
        slot.pace_tokens -= pack.size
        task = asyncio.create_task(self._call(slot, route, pack, grant, need))
        self.calls.add(task)

    async def _call(self, slot: RunSlot, route: RunContext, pack: Pack, grant: Grant, need: Need) -> None:
        started = time.monotonic()
        outcomes = []
        try:
            outcomes = await self.caller.call(route, pack.blocks, pack.token, grant, need)
        finally:
            slot.in_flight -= pack.size
            self.state.in_flight -= pack.size
            pool.call_ended(slot, route, pack.size,
                            answered=any(o.failure is None for o in outcomes),
                            key_refused=any(o.failure is not None and o.failure.kind in KEY_PAUSE_CAUSES
                                            for o in outcomes))
            self.calls.discard(asyncio.current_task())  # type: ignore[arg-type]
            slot.room_at = slot.claim_at = 0.0
            lane = self.state.lanes.get(route.lane.name)
            if lane is not None:
                lane.call_ended(time.monotonic() - started)
            self.wake.set()
        self.state.hold_for_writing(slot.ctx, outcomes, time.monotonic())
        if not slot.demand.cache_warmed and any(o.failure is None for o in outcomes):
            slot.demand = replace(slot.demand, cache_warmed=True)  # fan out now, not at the refresh
