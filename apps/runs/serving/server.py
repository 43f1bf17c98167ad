"""The serving loop: one asyncio loop per worker process, serving every active run with due work.

Each turn of the loop:
1. starts calls while the process has free slots (SERVE_MAX_IN_FLIGHT), taking runs in fair-share
   order (fairshare.py) and each call through its lane's gate (apps.lanes.gate: rate limits, the
   concurrency window, the run's parallelism). A lane that must wait takes no slot: its runs are
   skipped, and blocks claimed for it are given back if the wait is long;
2. hands the database work to ONE thread (sync_to_async, thread_sensitive), one hop at a time: write
   the outcomes of finished calls (a transaction per run, fenced as ever), give back blocks no call
   will be made for, claim the next blocks each run should hold (its share plus a little ahead, so a
   finished call's slot refills at once), and every SERVE_REFRESH_SECONDS look for runs with due
   work. While that thread works, the loop goes on starting and finishing calls: results are written
   behind the calls, never in waves;
3. waits for a call to finish, a hop to end, or the next timer.

At the end of its slice (SERVE_SLICE_SECONDS) the loop stops claiming, gives back what it has not
started, lets its calls finish and hands over to a new `serve` task if there is work left. The
database stays the truth: a loop that dies loses nothing (its leases expire; its lane entries too).
"""

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from apps.core.logcontext import log_context
from apps.core.redis import async_broker_redis
from apps.lanes.gate import LaneGate, Need, Settlements
from apps.metrics.recording import metrics_flush
from apps.runs.dispatch import serve_dispatch_rollback_unsafe, server_register
from apps.runs.services.claiming import Claim, ClaimedBlock, blocks_claim, blocks_release, lease_seconds
from apps.runs.services.decisions import Outcome
from apps.runs.services.outcomes import (
    RecordReport,
    outcomes_record,
    outcomes_write_failed,
    run_count_packs,
)
from apps.runs.services.recovery import leases_expire, runs_finalize_stragglers
from apps.runs.serving import fairshare
from apps.runs.serving.calls import ClientPool, PackCaller, call_need
from apps.runs.serving.context import Demand, RunContext, load_context, runs_with_due_work
from apps.runs.serving.process import prepare_process_for_serving
from apps.runs.transitions import RunStatus

logger = logging.getLogger(__name__)

# A lane that says "wait" for longer than this gets its claimed-but-unstarted blocks back in the
# database, so they hold no lease, no slot and no parallelism while it is shut.
RELEASE_AFTER_SECONDS = 2.0
# How long to leave a lane alone after "no room" (its window or the run's parallelism is full) when
# no call of ours on it has finished to say there is room again (the calls may be on other hosts).
ROOM_RECHECK_SECONDS = 0.1
LAG_TICK_SECONDS = 0.05
# Starts are paced at this many times the rate a run's parallelism can sustain (parallelism over the
# lane's latency), with bursts of at most an eighth of its parallelism: slots freed all at once are
# refilled over a moment instead of in one instant, so calls do not move in waves that come back
# together, every latency, and queue behind each other in the loop.
PACE_HEADROOM = 2.0
PACE_BURST_SHARE = 1 / 8
HELP_COOLDOWN_SECONDS = 5.0
# A write that fails this many hops in a row is given up (its leases expire; the pump retries them).
WRITE_ATTEMPTS = 3


def _conf(name: str) -> Any:
    return settings.CONVEYOR[name]


@dataclass
class Pack:
    blocks: list[ClaimedBlock]
    token: Any
    # After this (monotonic) the call could outlive the lease: given back instead of started.
    start_by: float = float("inf")


@dataclass
class RunSlot:
    ctx: RunContext
    demand: Demand
    ready: deque[Pack] = field(default_factory=deque)
    in_flight: int = 0
    # Outcomes written by a hop that has not returned yet still hold their claim in the database.
    unwritten: int = 0
    # The last claim found no more due blocks: ask again after the next refresh.
    exhausted: bool = False
    budget_wait: bool = False
    # Not active any more (paused, canceling, ended): give back, claim nothing.
    ended: bool = False
    claim_pending: bool = False
    waiting_since: float = field(default_factory=time.monotonic)
    # blocks held by other processes (claimed in the database, not here), as of the last refresh
    elsewhere: int = 0
    # The gate said the run's parallelism is used (by calls here or elsewhere): not before then.
    room_at: float = 0.0
    # Start pacing (see Server._pace): calls the run may start at once, as of pace_at.
    pace_tokens: float = 0.0
    pace_at: float = 0.0

    @property
    def parallelism(self) -> int:
        """What the run may have in calls: one until a cacheable run's first call has answered
        (cache warming), then its parallelism."""
        return self.demand.parallelism if self.demand.cache_warmed else 1

    @property
    def buffered(self) -> int:
        return sum(len(p.blocks) for p in self.ready)

    @property
    def held(self) -> int:
        return self.in_flight + self.buffered


@dataclass
class LaneSlot:
    closed_until: float = 0.0
    reason: str = ""
    # How long this loop's calls on the lane take (seconds, smoothed; 0: none has ended yet).
    latency: float = 0.0


@dataclass
class HopWork:
    writes: dict[Any, tuple[list[Outcome], RunContext]] = field(default_factory=dict)
    # How many times each run's writes failed before this hop (WRITE_ATTEMPTS bounds it).
    write_tries: dict[Any, int] = field(default_factory=dict)
    releases: list[tuple[Any, Any, list[int]]] = field(default_factory=list)
    # (run, how many, claim-ahead allowance, results held unwritten here)
    claims: list[tuple[Any, int, int, int]] = field(default_factory=list)
    pack_metrics: dict[Any, dict[str, int]] = field(default_factory=dict)
    refresh: bool = False
    # With a refresh: the pass and key revision of each run the loop knows, so that the hop loads a
    # context only for runs that are new or changed.
    known: dict[Any, tuple[int, int]] = field(default_factory=dict)
    recover: bool = False

    def __bool__(self) -> bool:
        return bool(self.writes or self.releases or self.claims or self.refresh or self.recover
                    or self.pack_metrics)


@dataclass
class HopResult:
    reports: dict[Any, RecordReport] = field(default_factory=dict)
    failed_writes: dict[Any, list[Outcome]] = field(default_factory=dict)
    demands: list[Demand] | None = None
    contexts: dict[Any, RunContext | None] = field(default_factory=dict)


@dataclass
class ServeReport:
    calls: int = 0
    splits: int = 0
    written: int = 0
    runs: int = 0
    handed_over: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "splits": self.splits, "written": self.written,
                "runs": self.runs, "handed_over": self.handed_over}


def _claim(work: HopWork, worker: str) -> dict[Any, Claim]:
    """The first part of a hop: the claims the loop waits for to refill its slots. Blocks whose
    calls came back and whose results are not written yet (in this hop or a later one) are not in
    flight, so they do not count against a run's bound."""
    claims = {}
    for run_id, limit, ahead, answered in work.claims:
        try:
            claims[run_id] = blocks_claim(run_id=run_id, limit=limit, worker=worker, ahead=ahead,
                                          answered=answered)
        except Exception:
            logger.exception("could not claim blocks of run %s", run_id)
    return claims


def _hop(work: HopWork, worker: str) -> HopResult:
    """The rest of a hop, in the database thread, in this order: writes, give-backs, the refresh and
    recovery. Each operation is its own transaction; one failing does not stop the others."""
    result = HopResult()
    for run_id, (outcomes, ctx) in work.writes.items():
        try:
            result.reports[run_id] = outcomes_record(
                run_id=run_id, outcomes=outcomes, worker=worker, secrets=(ctx.api_key,),
                key_revision=ctx.key_revision)
        except Exception as exc:
            tries = work.write_tries.get(run_id, 0) + 1
            with log_context(run_id=run_id, key_id=ctx.key_id, secrets=(ctx.api_key,)):
                outcomes_write_failed(run_id=run_id, outcomes=outcomes, error=exc,
                                      function_name="conveyor.runs.serve", tries=tries,
                                      gave_up=tries >= WRITE_ATTEMPTS)
            result.failed_writes[run_id] = outcomes
    for run_id, counts in work.pack_metrics.items():
        try:
            run_count_packs(run_id=run_id, counts=counts)
        except Exception:
            logger.exception("could not count packs of run %s", run_id)
    for run_id, token, block_ids in work.releases:
        try:
            blocks_release(run_id=run_id, token=token, block_ids=block_ids)
        except Exception:  # they stay claimed until their lease expires: nothing is lost
            logger.exception("could not give back %d block(s) of run %s", len(block_ids), run_id)
    # Never raise from here on: the writes above are committed, and a hop that raised would be taken
    # for failed writes and written again (their attempts, and their cost, counted twice).
    if work.refresh:
        try:
            result.demands = runs_with_due_work()
        except Exception:  # the next refresh tries again
            logger.exception("could not read the runs with due work")
        for demand in result.demands or ():
            if work.known.get(demand.run_id) != (demand.current_pass, demand.key_revision):
                try:
                    result.contexts[demand.run_id] = load_context(demand.run_id)
                except Exception:
                    logger.exception("could not load run %s", demand.run_id)
    if work.recover:
        try:
            leases_expire()
            runs_finalize_stragglers()
        except Exception:  # the pump recovers too
            logger.exception("serving loop recovery failed")
    # What this hop's writes and the calls since the last hop counted: one pipelined Redis write.
    metrics_flush()
    return result


class Server:
    def __init__(self, *, worker: str, slice_seconds: float | None = None, ceiling: int | None = None,
                 refresh_seconds: float | None = None, idle_exit_seconds: float | None = None,
                 stop: asyncio.Event | None = None) -> None:
        self.worker = worker
        self.slice_seconds = slice_seconds if slice_seconds is not None else _conf("SERVE_SLICE_SECONDS")
        # A loop with nothing to do for this long ends (the process goes back to other tasks; the
        # pump and new runs start a loop again when work comes).
        self.idle_exit_seconds = (idle_exit_seconds if idle_exit_seconds is not None
                                  else _conf("SERVE_IDLE_EXIT_SECONDS"))
        self.idle_since: float | None = None
        self.ceiling = ceiling or _conf("SERVE_MAX_IN_FLIGHT")
        self.refresh_seconds = refresh_seconds or _conf("SERVE_REFRESH_SECONDS")
        self.stop = stop or asyncio.Event()
        self.slots: dict[Any, RunSlot] = {}
        self.lanes: dict[str, LaneSlot] = {}
        self.demands: dict[Any, Demand] = {}
        self.in_flight = 0
        self.calls: set[asyncio.Task] = set()
        self.writes: dict[Any, list[Outcome]] = {}
        # When the oldest result in self.writes came back (monotonic); None: nothing to write.
        self.writes_since: float | None = None
        self.write_failures: dict[Any, int] = {}
        self.releases: list[tuple[Any, Any, list[int]]] = []
        self.hop: asyncio.Task | None = None
        self.hop_carries_work = False
        self.wake = asyncio.Event()
        self.stopping = False
        self.next_refresh = 0.0
        self.next_recovery = time.monotonic() + _conf("PUMP_INTERVAL_SECONDS") * 2
        self.next_heartbeat = 0.0
        self.heartbeat: asyncio.Task | None = None
        self.report = ServeReport()
        # How late the event loop runs what it was asked to (seconds, smoothed): a loop that is late
        # is short of CPU, and asks for another loop (another process or host) to share its work.
        self.lag = 0.0
        self.next_help = time.monotonic() + HELP_COOLDOWN_SECONDS
        self.database = sync_to_async(_hop, thread_sensitive=True)
        self.database_claims = sync_to_async(_claim, thread_sensitive=True)

    # --- the loop ------------------------------------------------------------------------------

    async def run(self) -> ServeReport:
        prepare_process_for_serving()
        redis_client = async_broker_redis()
        self.gate = LaneGate(redis_client)
        self.clients = ClientPool()
        self.settlements = Settlements(self.gate)
        self.caller = PackCaller(gate=self.gate, clients=self.clients, settlements=self.settlements)
        deadline = time.monotonic() + self.slice_seconds
        watcher = asyncio.create_task(self._watch_lag())
        try:
            while True:
                now = time.monotonic()
                if not self.stopping and (now >= deadline or self.stop.is_set()):
                    self._begin_stopping()
                if now >= self.next_heartbeat and not self.stopping:
                    self._heartbeat()
                if self.settlements:
                    await self.settlements.flush(time.time())
                if not self.stopping:
                    self._give_back_stale(now)
                    await self._start_calls()
                    self._ask_for_help_if_late(now)
                self._schedule_hop()
                if self.stopping and not self.calls and self.hop is None and not self._db_work_left():
                    break
                if self._idle_for_long(now):
                    break
                await self._sleep_until_woken()
        finally:
            watcher.cancel()
            if self.heartbeat is not None:
                await asyncio.gather(self.heartbeat, return_exceptions=True)
            for task in list(self.calls):
                task.cancel()
            if self.hop is not None:
                await asyncio.gather(self.hop, return_exceptions=True)
            await self.settlements.flush(time.time())
            await self.clients.close()
            await redis_client.aclose()
            await sync_to_async(close_old_connections, thread_sensitive=True)()
        self.report.calls, self.report.splits = self.caller.calls, self.caller.splits
        self.report.runs = len(self.slots)
        return self.report

    async def _watch_lag(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(LAG_TICK_SECONDS)
            late = time.monotonic() - started - LAG_TICK_SECONDS
            self.lag = self.lag * 0.8 + late * 0.2

    def _ask_for_help_if_late(self, now: float) -> None:
        if self.lag < _conf("SERVE_HELP_LAG_SECONDS") or now < self.next_help or not self.demands:
            return
        self.next_help = now + HELP_COOLDOWN_SECONDS
        logger.info("serving loop %s is short of CPU (lag %.0f ms): asking for another", self.worker,
                    self.lag * 1000)
        try:
            serve_dispatch_rollback_unsafe(reason=f"{self.worker} asks for help", help_wanted=True)
        except Exception:
            logger.warning("could not ask for another serving loop", exc_info=True)

    def _idle_for_long(self, now: float) -> bool:
        # A hop that only looks for work (a refresh) is not work.
        busy = self.slots or self.calls or self.hop_carries_work or self._db_work_left()
        if busy or self.next_refresh == 0.0:
            self.idle_since = None
            return False
        if self.idle_since is None:
            self.idle_since = now
        return now - self.idle_since >= self.idle_exit_seconds

    async def _sleep_until_woken(self) -> None:
        now = time.monotonic()
        timers = [self.next_refresh, self.next_heartbeat]
        if self.writes_since is not None:
            timers.append(self.writes_since + _conf("SERVE_WRITE_BATCH_SECONDS"))
        timers += [lane.closed_until for lane in self.lanes.values() if lane.closed_until > now]
        timers += [slot.room_at for slot in self.slots.values() if slot.room_at > now and slot.ready]
        timeout = max(0.0, min(timers) - now) if timers else self.refresh_seconds
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=min(timeout, self.refresh_seconds))

    def _heartbeat(self) -> None:
        """Keep this loop's serving place: a Redis write in a thread of its own, never awaited by the
        loop and never queued behind the database thread's hop (which would stall every call start
        for as long as the hop takes)."""
        self.next_heartbeat = time.monotonic() + self.refresh_seconds * 4
        if self.heartbeat is None or self.heartbeat.done():
            self.heartbeat = asyncio.create_task(self._register())

    async def _register(self) -> None:
        try:
            await sync_to_async(server_register, thread_sensitive=False)(
                worker=self.worker, ttl_seconds=self.refresh_seconds * 12)
        except Exception:
            logger.warning("could not register serving loop %s", self.worker, exc_info=True)

    def _begin_stopping(self) -> None:
        self.stopping = True
        for slot in self.slots.values():
            self._give_back(slot)
        if self.demands:
            # Work is left: hand over now, so another process takes it while these calls finish.
            self.report.handed_over = True
            try:
                serve_dispatch_rollback_unsafe(reason=f"{self.worker} handing over", help_wanted=True)
            except Exception:
                logger.warning("could not hand over to a new serving loop", exc_info=True)

    # --- starting calls ----------------------------------------------------------------------------

    def _contenders(self) -> list[fairshare.Contender]:
        result = []
        for slot in self.slots.values():
            if slot.ended:
                continue
            # How many of its blocks it could have in calls here: its parallelism less what other
            # workers hold, and, once its due work is all claimed, no more than it holds.
            room = max(0, slot.parallelism - slot.elsewhere)
            want = min(room, slot.held) if slot.exhausted or slot.budget_wait else room
            want = max(want, slot.in_flight)
            if want <= 0:
                continue
            result.append(fairshare.Contender(
                run_id=slot.ctx.run_id, owner_id=slot.ctx.owner_id, weight=slot.demand.priority,
                held=slot.in_flight, demand=want, waiting_since=slot.waiting_since))
        return result

    async def _start_calls(self) -> None:
        contenders = self._contenders()
        if not contenders:
            return
        shares = fairshare.targets(self.ceiling, contenders)
        # Pass 1: each run up to its fair share, the furthest below it first. Pass 2: slots left over
        # to anyone with blocks ready, longest waiting first (work-conserving).
        passes = ((True, fairshare.order(contenders, shares)),
                  (False, sorted(contenders, key=lambda c: c.waiting_since)))
        for fair, ordered in passes:
            for contender in ordered:
                if self.in_flight >= self.ceiling:
                    return
                slot = self.slots.get(contender.run_id)
                if slot is None or slot.ended:
                    continue
                # Never past the run's parallelism (the gate would refuse it anyway).
                limit = contender.demand
                if fair:
                    limit = min(limit, math.ceil(shares.get(contender.run_id, 0)))
                while (slot.ready and slot.in_flight < limit and self.in_flight < self.ceiling
                       and slot.room_at <= time.monotonic()):
                    room = min(limit - slot.in_flight, self.ceiling - self.in_flight)
                    if not await self._start_some(slot, room):
                        break

    async def _start_some(self, slot: RunSlot, room: int) -> bool:
        """Ask the lane, in one round trip, for the slot's next ready packs up to `room` blocks (at
        least one pack) and start those it grants. False when the lane refused one (it says why and
        for how long) or no call may start now."""
        lane = self.lanes.setdefault(slot.ctx.lane.name, LaneSlot())
        now = time.monotonic()
        if lane.closed_until > now:
            return False
        room = min(room, self._pace(slot, lane, now))
        if room <= 0:
            return False
        packs: list[Pack] = []
        taken = 0
        while slot.ready and (not packs or taken + len(slot.ready[0].blocks) <= room):
            pack = slot.ready.popleft()
            if now > pack.start_by:
                # Held too long (its lane kept it waiting): a call now could outlive the lease and
                # be made twice. Give it back; it is claimed afresh.
                self.releases.append((slot.ctx.run_id, pack.token, [b.id for b in pack.blocks]))
                continue
            packs.append(pack)
            taken += len(pack.blocks)
        if not packs:
            return True
        needs = [call_need(slot.ctx, pack.blocks) for pack in packs]
        try:
            if self.settlements:  # calls that ended while we were busy: their room first
                await self.settlements.flush(time.time())
            grants = await self.gate.try_acquire_many(
                slot.ctx.lane, run_id=slot.ctx.run_id, needs=needs, parallelism=slot.parallelism,
                limits=slot.ctx.limits, now=time.time(), lease_seconds=lease_seconds())
        except Exception:
            logger.warning("lane %s: gate unavailable", slot.ctx.lane.name, exc_info=True)
            slot.ready.extendleft(reversed(packs))
            lane.closed_until, lane.reason = time.monotonic() + 1.0, "gate unavailable"
            return False
        granted = [(pack, grant, need) for pack, grant, need in zip(packs, grants, needs, strict=False)
                   if grant.granted]
        if slot.ended or self.stopping:
            # The run ended (or the loop began stopping) while we asked: no call goes out.
            for _pack, grant, need in granted:
                await self.gate.cancel(slot.ctx.lane, grant, run_id=slot.ctx.run_id, need=need,
                                       limits=slot.ctx.limits, now=time.time())
            for pack in packs:
                self.releases.append((slot.ctx.run_id, pack.token, [b.id for b in pack.blocks]))
            return False
        for pack, grant, need in granted:
            slot.in_flight += len(pack.blocks)
            self.in_flight += len(pack.blocks)
            slot.pace_tokens -= len(pack.blocks)
            task = asyncio.create_task(self._call(slot, pack, grant, need))
            self.calls.add(task)
        if granted:
            slot.waiting_since = time.monotonic()
        if len(granted) == len(packs):
            return True
        slot.ready.extendleft(reversed(packs[len(granted):]))
        refusal = grants[len(granted)]
        self._lane_refused(lane, slot, refusal.reason, refusal.wait_seconds)
        return False

    def _pace(self, slot: RunSlot, lane: LaneSlot, now: float) -> int:
        """How many blocks the run may start now by its pacing (no limit before the lane's first
        call here has ended); none: the run waits (room_at) until one may."""
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

    def _lane_refused(self, lane: LaneSlot, slot: RunSlot, reason: str, wait: float) -> None:
        if reason == "parallelism":
            # The run's own bound (its calls on other workers count too): only this run waits.
            slot.room_at = time.monotonic() + ROOM_RECHECK_SECONDS
            return
        if reason == "window":
            # Room comes back when a call finishes; ours wake us, others' are polled for.
            lane.closed_until, lane.reason = time.monotonic() + ROOM_RECHECK_SECONDS, reason
            return
        lane.closed_until, lane.reason = time.monotonic() + max(wait, 0.01), reason
        if wait > RELEASE_AFTER_SECONDS:
            for other in self.slots.values():
                if other.ctx.lane == slot.ctx.lane:
                    self._give_back(other)

    def _give_back_stale(self, now: float) -> None:
        """Ready packs that waited so long that a call could outlive their lease go back (a lane
        that keeps saying "in a moment" must not leave a lease to expire under a buffered block)."""
        for slot in self.slots.values():
            while slot.ready and slot.ready[0].start_by < now:
                pack = slot.ready.popleft()
                self.releases.append((slot.ctx.run_id, pack.token, [b.id for b in pack.blocks]))

    def _give_back(self, slot: RunSlot) -> None:
        while slot.ready:
            pack = slot.ready.popleft()
            self.releases.append((slot.ctx.run_id, pack.token, [b.id for b in pack.blocks]))

    async def _call(self, slot: RunSlot, pack: Pack, grant: Any, need: Need) -> None:
        started = time.monotonic()
        try:
            outcomes = await self.caller.call(slot.ctx, pack.blocks, pack.token, grant, need)
        finally:
            slot.in_flight -= len(pack.blocks)
            self.in_flight -= len(pack.blocks)
            self.calls.discard(asyncio.current_task())  # type: ignore[arg-type]
            slot.room_at = 0.0
            lane = self.lanes.get(slot.ctx.lane.name)
            if lane is not None:
                took = time.monotonic() - started
                lane.latency = took if lane.latency <= 0 else lane.latency * 0.9 + took * 0.1
                if lane.reason == "window":
                    lane.closed_until = 0.0
            self.wake.set()
        self._hold_for_writing(slot, outcomes)
        if not slot.demand.cache_warmed and any(o.failure is None for o in outcomes):
            slot.demand = replace(slot.demand, cache_warmed=True)  # fan out now, not at the refresh

    # --- the database hop --------------------------------------------------------------------------

    def _hold_for_writing(self, slot: RunSlot, outcomes: list[Outcome]) -> None:
        """Results wait here for the next write batch; they still hold their claims in the database."""
        self.writes.setdefault(slot.ctx.run_id, []).extend(outcomes)
        slot.unwritten += len(outcomes)
        if self.writes_since is None:
            self.writes_since = time.monotonic()

    def _writes_due(self, now: float) -> bool:
        """Write now, or gather more first: when stopping, when no call is left in flight (the last
        results of a run are not kept waiting), or once the oldest result has waited its batch time."""
        if self.writes_since is None:
            return False
        return (self.stopping or not self.in_flight
                or now - self.writes_since >= _conf("SERVE_WRITE_BATCH_SECONDS"))

    def _db_work_left(self) -> bool:
        return bool(self.writes or self.releases or self.caller.pack_metrics)

    def _schedule_hop(self) -> None:
        if self.hop is not None:
            return
        work = self._collect_work()
        if work:
            self.hop_carries_work = bool(work.writes or work.releases or work.claims)
            self.hop = asyncio.create_task(self._run_hop(work))

    def _collect_work(self) -> HopWork:
        now = time.monotonic()
        work = HopWork()
        if self._writes_due(now):
            for run_id, outcomes in self.writes.items():
                # A slot is never dropped while it has unwritten outcomes (see _refresh).
                work.writes[run_id] = (outcomes, self.slots[run_id].ctx)
            self.writes, self.writes_since = {}, None
        work.write_tries = {run_id: self.write_failures.get(run_id, 0) for run_id in work.writes}
        work.releases, self.releases = self.releases, []
        work.pack_metrics = {run_id: dict(c) for run_id, c in self.caller.take_pack_metrics().items()}
        if not self.stopping:
            work.claims = self._claims_wanted()
            if now >= self.next_refresh:
                work.refresh = True
                work.known = {run_id: (slot.ctx.current_pass, slot.ctx.key_revision)
                              for run_id, slot in self.slots.items()}
                self.next_refresh = now + self.refresh_seconds
            if now >= self.next_recovery:
                work.recover = True
                self.next_recovery = now + _conf("PUMP_INTERVAL_SECONDS") * 2
        return work

    def _claims_wanted(self) -> list[tuple[Any, int, int, int]]:
        contenders = self._contenders()
        shares = fairshare.targets(self.ceiling, contenders) if contenders else {}
        wanted = []
        for slot in self.slots.values():
            if slot.ended or slot.exhausted or slot.budget_wait or slot.claim_pending:
                continue
            lane = self.lanes.get(slot.ctx.lane.name)
            if lane is not None and lane.closed_until - time.monotonic() > RELEASE_AFTER_SECONDS:
                continue
            share = math.ceil(shares.get(slot.ctx.run_id, 0))
            ahead = max(slot.ctx.pack_size, math.ceil(share * _conf("SERVE_CLAIM_AHEAD")))
            limit = share + ahead - slot.held
            pack = slot.ctx.pack_size
            limit = -(-limit // pack) * pack if limit > 0 else limit  # whole packs only
            if limit >= max(1, min(pack, share)):
                slot.claim_pending = True
                wanted.append((slot.ctx.run_id, limit, ahead, slot.unwritten))
        return wanted

    async def _run_hop(self, work: HopWork) -> None:
        if work.claims:
            try:
                claims = await self.database_claims(work, self.worker)
            except Exception:
                logger.exception("serving loop %s: claims failed", self.worker)
                claims = {}
            self._apply_claims(work, claims)
            self.wake.set()
            await asyncio.sleep(0)  # let the loop start what was claimed before the writes begin
        try:
            result = await self.database(work, self.worker)
        except Exception:
            logger.exception("serving loop %s: database hop failed", self.worker)
            result = HopResult(failed_writes={run_id: o for run_id, (o, _) in work.writes.items()})
        finally:
            self.hop = None
            self.hop_carries_work = False
        self._apply(work, result)
        self.wake.set()

    def _apply(self, work: HopWork, result: HopResult) -> None:
        for run_id, (outcomes, _ctx) in work.writes.items():
            slot = self.slots.get(run_id)
            if slot is not None:
                slot.unwritten -= len(outcomes)
        for run_id, report in result.reports.items():
            self.report.written += report.written
            self.write_failures.pop(run_id, None)
            slot = self.slots.get(run_id)
            if slot is not None:
                slot.budget_wait = False  # settled calls gave their reservations back
            if report.run_status != RunStatus.RUNNING:
                self._end(run_id)
        for run_id, outcomes in result.failed_writes.items():
            self._retry_write(run_id, outcomes, work)
        if result.demands is not None:
            self._refresh(result.demands, result.contexts)

    def _apply_claims(self, work: HopWork, claims: dict[Any, Claim]) -> None:
        for run_id, *_ in work.claims:
            slot = self.slots.get(run_id)
            if slot is not None:
                slot.claim_pending = False
        for run_id, claim in claims.items():
            self._take(run_id, claim, work)

    def _retry_write(self, run_id: Any, outcomes: list[Outcome], work: HopWork) -> None:
        failures = self.write_failures.get(run_id, 0) + 1
        if failures < WRITE_ATTEMPTS:
            self.write_failures[run_id] = failures
            # A slot is never dropped while it has unwritten outcomes (see _refresh).
            self._hold_for_writing(self.slots[run_id], outcomes)
            return
        # Given up: the hop that failed the last time said so (DB_WRITE_FAILED, gave_up); the
        # blocks stay claimed until their leases expire and the pump hands them out again.
        self.write_failures.pop(run_id, None)

    def _take(self, run_id: Any, claim: Claim, work: HopWork) -> None:
        slot = self.slots.get(run_id)
        if slot is None:
            return
        if claim.run_status != RunStatus.RUNNING:
            self._end(run_id)
            return
        slot.budget_wait = claim.budget_wait
        asked = next((limit for r, limit, *_ in work.claims if r == run_id), 0)
        if not claim.blocks:
            slot.exhausted = not claim.budget_wait
            return
        if len(claim.blocks) < asked:
            slot.exhausted = True
        if self.stopping or slot.ended:
            self.releases.append((run_id, claim.lease_token, [b.id for b in claim.blocks]))
            return
        size = slot.ctx.pack_size
        # The lease is the call's timeout plus a margin: half of it for waiting here before the call,
        # half for writing the result behind it. A pack not started by then goes back.
        start_by = time.monotonic() + _conf("LEASE_MARGIN_SECONDS") / 2
        for i in range(0, len(claim.blocks), size):
            slot.ready.append(Pack(blocks=claim.blocks[i:i + size], token=claim.lease_token,
                                   start_by=start_by))

    def _refresh(self, demands: list[Demand], contexts: dict[Any, RunContext | None]) -> None:
        """A new picture of the runs with due work: new runs get a slot, changed ones (a new pass, a
        changed key) a new context, runs with nothing due and nothing held here are let go."""
        self.demands = {d.run_id: d for d in demands}
        for demand in demands:
            slot = self.slots.get(demand.run_id)
            if demand.run_id in contexts:
                ctx = contexts[demand.run_id]
                if ctx is None:
                    continue
                if slot is None:
                    slot = self.slots[demand.run_id] = RunSlot(ctx=ctx, demand=demand)
                elif not slot.held:
                    slot.ctx = ctx
            if slot is None:
                continue
            slot.demand = demand
            slot.exhausted = slot.ended = False
            slot.elsewhere = max(0, demand.claimed - slot.held - slot.unwritten)
        for run_id, slot in list(self.slots.items()):
            if run_id not in self.demands and not slot.held and not slot.unwritten:
                del self.slots[run_id]

    def _end(self, run_id: Any) -> None:
        slot = self.slots.get(run_id)
        if slot is not None:
            slot.ended = True
            self._give_back(slot)
