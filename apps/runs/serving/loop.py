"""The serving loop: one asyncio loop per worker process, serving every active run with due work.

It is three parts, each in its own module:
- starting calls (`starting.py`): fair share, pacing, the lanes' answers;
- database rounds (`rounds.py`): collect what needs the database, run it in one thread, apply it;
- the loop's life (this module): its slice, its place on the host, asking for help, stopping.

Each turn of `ServingLoop.run`:
1. stop claiming once the slice is over (or someone asked it to stop), handing over to a new loop
   (its serving place given up first: it only finishes its calls, the next loop starts new ones);
2. keep this loop's serving place (a heartbeat, never awaited);
3. settle in the lanes every call that ended since the last turn (one script call per lane and run);
4. post its uses of its lanes and read the other processes' (lane-wide fair share, lanewide.py),
   set its ceiling from the lanes' concurrency (capacity.py), give back packs held too long, start
   calls while the process has free slots, and ask for another loop if this one is short of CPU;
5. start a database round if none is running and there is work for one;
6. end when stopping and nothing is left in calls or to write, or when idle for long;
7. sleep until a call ends, a round ends, or the next timer (refresh, write batch, a lane or run
   that said "wait").

At the end of its slice the loop stops claiming, gives back what it has not started, hands over to a
new `serve` task if there is work left, lets its calls finish and writes them. The database stays the
truth: a loop that dies loses nothing (its leases expire, its lane entries too).

Asking for help and handing over go to the broker from a thread of their own (messages.py), never
from the event loop: a broker that does not answer delays help, not calls. A loop whose serving place
is refused at a heartbeat (another process took it) stops the same way as at the end of its slice,
without handing over: the one that took its place serves. One whose renewals failed for its whole
expiry (Redis unreachable) stops too, and hands over: its place may or may not have been taken."""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from apps.core.redis import async_broker_redis
from apps.lanes.gate import LaneGate, Settlements
from apps.runs.dispatch import (
    serve_dispatch_rollback_unsafe,
    serve_hand_over_rollback_unsafe,
    server_register,
)
from apps.runs.serving import capacity, lanewide, rounds
from apps.runs.serving.calls import ClientPool, PackCaller
from apps.runs.serving.lanewide import LaneBoard
from apps.runs.serving.messages import BrokerMessages
from apps.runs.serving.process import open_files_capacity, prepare_process_for_serving
from apps.runs.serving.rounds import RoundResult, RoundWork
from apps.runs.serving.slots import LoopState
from apps.runs.serving.starting import CallStarter

logger = logging.getLogger(__name__)

LAG_TICK_SECONDS = 0.05
HELP_COOLDOWN_SECONDS = 5.0
# How long an ending loop lets its hand-over message go out before it ends anyway.
HAND_OVER_WAIT_SECONDS = 5.0
# How often a loop posts its uses of its lanes and reads the other processes' (lanewide.py).
LANE_SYNC_SECONDS = 0.05


def _conf(name: str) -> Any:
    return settings.CONVEYOR[name]


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


class ServingLoop:
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
        self.refresh_seconds = refresh_seconds or _conf("SERVE_REFRESH_SECONDS")
        self.stop = stop or asyncio.Event()
        # An operator's bound on the ceiling (SERVE_MAX_IN_FLIGHT, or `ceiling`); None: automatic.
        self.operator_ceiling: int | None = ceiling or _conf("SERVE_MAX_IN_FLIGHT")
        self.state = LoopState(ceiling=1)
        self.board: LaneBoard | None = None
        self.clients: ClientPool | None = None
        self._update_ceiling()
        self.wake = asyncio.Event()
        # Every call in flight is a task here (CallStarter adds and discards them).
        self.calls: set[asyncio.Task[None]] = set()
        self.caller: PackCaller | None = None
        self.round: asyncio.Task[None] | None = None
        self.round_carries_work = False
        self.next_refresh = 0.0
        self.next_recovery = time.monotonic() + _conf("PUMP_INTERVAL_SECONDS") * 2
        self.next_heartbeat = 0.0
        self.heartbeat: asyncio.Task[None] | None = None
        # The serving place: held until this (monotonic), renewed by each heartbeat it is granted.
        self.place_ttl = self.refresh_seconds * 12
        self.place_until = time.monotonic() + self.place_ttl
        self.place_lost: str | None = None
        # Stopping with work left: hand over (give up the place, ask for the next loop) when it can.
        self.hand_over_due = False
        self.messages = BrokerMessages()
        self.report = ServeReport()
        # How late the event loop runs what it was asked to (seconds, smoothed): a loop that is late
        # is short of CPU, and asks for another loop (another process or host) to share its work.
        self.lag = 0.0
        self.next_help = time.monotonic() + HELP_COOLDOWN_SECONDS
        self.database_claims = sync_to_async(rounds.claim_in_database, thread_sensitive=True)
        self.database_writes = sync_to_async(rounds.write_in_database, thread_sensitive=True)

    @property
    def stopping(self) -> bool:
        return self.state.stopping

    # --- the loop ------------------------------------------------------------------------------

    async def run(self) -> ServeReport:
        prepare_process_for_serving()
        redis_client = async_broker_redis()
        gate = LaneGate(redis_client)
        self.clients = ClientPool()
        self.settlements = Settlements(gate)
        self.caller = PackCaller(gate=gate, clients=self.clients, settlements=self.settlements)
        self.board = LaneBoard(redis_client, worker=self.worker, sync_seconds=LANE_SYNC_SECONDS,
                               ttl_seconds=max(2.0, self.refresh_seconds * 4))
        self.starter = CallStarter(state=self.state, gate=gate, caller=self.caller,
                                   settlements=self.settlements, wake=self.wake, calls=self.calls,
                                   board=self.board)
        deadline = time.monotonic() + self.slice_seconds
        watcher = asyncio.create_task(self._watch_lag())
        try:
            while True:
                now = time.monotonic()
                if not self.stopping and (now >= deadline or self.stop.is_set()):   # 1
                    self._begin_stopping()
                if now >= self.next_heartbeat and not self.stopping:                # 2
                    self._heartbeat()
                self._hand_over_when_due()
                if self.settlements:                                                # 3
                    await self.settlements.flush(time.time())
                if not self.stopping:                                               # 4
                    await self._sync_lanes(now)
                    self.starter.give_back_stale(now)
                    await self.starter.start_calls()
                    self._ask_for_help_if_late(now)
                self._schedule_round()                                              # 5
                if self._finished() or self._idle_for_long(now):                    # 6
                    break
                await self._sleep_until_woken()                                     # 7
        finally:
            watcher.cancel()
            await self._wind_down(redis_client)
        self.report.calls, self.report.splits = self.caller.calls, self.caller.splits
        self.report.runs = len(self.state.slots)
        return self.report

    async def _wind_down(self, redis_client: Any) -> None:
        if self.heartbeat is not None:
            await asyncio.gather(self.heartbeat, return_exceptions=True)
        self._hand_over_when_due()
        for task in list(self.calls):
            task.cancel()
        if self.round is not None:
            await asyncio.gather(self.round, return_exceptions=True)
        await self.settlements.flush(time.time())
        if self.board is not None:
            await self.board.withdraw()
        await self.messages.settle(HAND_OVER_WAIT_SECONDS)
        self.messages.close()
        assert self.clients is not None  # made when the loop started
        await self.clients.close()
        await redis_client.aclose()
        await sync_to_async(close_old_connections, thread_sensitive=True)()

    async def _sync_lanes(self, now: float) -> None:
        """Post this loop's uses of its lanes and read the others' (lane-wide fair share; at most
        every LANE_SYNC_SECONDS, one pipeline), then set the ceiling from the lanes' concurrency."""
        assert self.board is not None
        if self.board.due(now) or any(slot.ctx.lane.name not in self.board.views
                                      for slot in self.state.slots.values()):
            expires_ms = int((time.time() + self.board.ttl_seconds) * 1000)
            await self.board.sync(lanewide.posts_of(self.state, worker=self.worker, now=now,
                                                    expires_ms=expires_ms), now)
        self._update_ceiling()

    def _update_ceiling(self) -> None:
        """The ceiling from the lanes' concurrency (capacity.py), and each key's connection pools sized
        to its lanes' (within the ceiling), so no call queues inside the HTTP client."""
        lanes = lanewide.concurrency_in_use(self.state, self.board,
                                            initial_window=_conf("LANE_INITIAL_WINDOW"),
                                            window_after_headers=_conf("LANE_WINDOW_AFTER_HEADERS"))
        ceiling = capacity.process_ceiling(lanes.values(), operator=self.operator_ceiling,
                                           open_files=open_files_capacity())
        self.state.ceiling, self.state.ceiling_by = ceiling.calls, ceiling.bound_by
        if self.clients is not None:
            for key_id, calls in capacity.calls_per_key(lanes, ceiling=ceiling.calls).items():
                self.clients.size(key_id, calls)

    def _finished(self) -> bool:
        return (self.stopping and not self.calls and self.round is None
                and not self._database_work_left())

    def _database_work_left(self) -> bool:
        pack_metrics = self.caller is not None and self.caller.pack_metrics
        return bool(self.state.writes or self.state.releases or pack_metrics)

    async def _watch_lag(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(LAG_TICK_SECONDS)
            late = time.monotonic() - started - LAG_TICK_SECONDS
            self.lag = self.lag * 0.8 + late * 0.2

    def _ask_for_help_if_late(self, now: float) -> None:
        if self.lag < _conf("SERVE_HELP_LAG_SECONDS") or now < self.next_help or not self.state.demands:
            return
        self.next_help = now + HELP_COOLDOWN_SECONDS
        logger.info("serving loop %s is short of CPU (lag %.0f ms): asking for another", self.worker,
                    self.lag * 1000)
        reason = f"{self.worker} asks for help"
        self.messages.send(reason, serve_dispatch_rollback_unsafe, reason=reason, help_wanted=True)

    def _idle_for_long(self, now: float) -> bool:
        # A round that only looks for work (a refresh) is not work.
        busy = (self.state.slots or self.calls or self.round_carries_work
                or self._database_work_left())
        if busy or self.next_refresh == 0.0:
            self.idle_since = None
            return False
        if self.idle_since is None:
            self.idle_since = now
        return now - self.idle_since >= self.idle_exit_seconds

    async def _sleep_until_woken(self) -> None:
        now = time.monotonic()
        timers = [self.next_heartbeat]
        # While a round runs, neither the refresh nor the writes can start before it ends (and its end
        # wakes the loop): waiting on their timers would spin the loop, starving the round's thread.
        if self.round is None:
            timers.append(self.next_refresh)
            writes_due = self.state.writes.due_at(_conf("SERVE_WRITE_BATCH_SECONDS"))
            if writes_due is not None:
                timers.append(writes_due)
        timers += [lane.closed_until for lane in self.state.lanes.values() if lane.closed_until > now]
        timers += [slot.room_at for slot in self.state.slots.values() if slot.room_at > now and slot.ready]
        timeout = max(0.0, min(timers) - now) if timers else self.refresh_seconds
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=min(timeout, self.refresh_seconds))

    def _heartbeat(self) -> None:
        """Keep this loop's serving place: a Redis write in a thread of its own, never awaited by the
        loop and never queued behind the database thread's round (which would stall every call start
        for as long as the round takes)."""
        now = time.monotonic()
        self.next_heartbeat = now + self.refresh_seconds * 4
        renewing = self.heartbeat is not None and not self.heartbeat.done()
        if now >= self.place_until and not renewing:
            # Its renewals failed for its whole expiry (Redis unreachable): another process may hold
            # it now. (A renewal still on its way is waited for: its answer says.)
            self._lose_place("expired")
            return
        if not renewing:
            self.heartbeat = asyncio.create_task(self._register())

    async def _register(self) -> None:
        asked = time.monotonic()
        try:
            granted = await sync_to_async(server_register, thread_sensitive=False)(
                worker=self.worker, ttl_seconds=self.place_ttl)
        except Exception:
            logger.warning("could not register serving loop %s", self.worker, exc_info=True)
            return
        if granted:
            self.place_until = asked + self.place_ttl
        else:
            self._lose_place("refused")

    def _lose_place(self, why: str) -> None:
        """The registration's answer is the truth: a loop without a place stops (gives back what it
        holds, lets its calls finish and writes them) instead of serving beside the one that took it."""
        if self.place_lost is None:
            logger.warning("serving loop %s: its serving place was %s; stopping", self.worker, why)
            self.place_lost = why
        self.stop.set()
        self.wake.set()

    def _begin_stopping(self) -> None:
        self.state.stopping = True
        for slot in self.state.slots.values():
            self.state.give_back(slot)
        if self.state.demands and self.place_lost != "refused":
            # Work is left: hand over now, so another process takes it while these calls finish.
            # (A loop refused its place hands over to no one: the process that took it serves.)
            self.hand_over_due = True
        self._hand_over_when_due()

    def _hand_over_when_due(self) -> None:
        """Give up the serving place and ask for the next loop, once no renewal of the place is on its
        way (it would take the place back after it was given up)."""
        if not self.hand_over_due or (self.heartbeat is not None and not self.heartbeat.done()):
            return
        self.hand_over_due = False
        self.report.handed_over = True
        reason = f"{self.worker} handing over"
        self.messages.send(reason, serve_hand_over_rollback_unsafe, worker=self.worker, reason=reason)

    # --- database rounds ---------------------------------------------------------------------------

    def _schedule_round(self) -> None:
        if self.round is not None:
            return
        now = time.monotonic()
        refresh = now >= self.next_refresh
        if refresh and not self.stopping:
            self.next_refresh = now + self.refresh_seconds
        recover = now >= self.next_recovery
        if recover and not self.stopping:
            self.next_recovery = now + _conf("PUMP_INTERVAL_SECONDS") * 2
        taken = self.caller.take_pack_metrics() if self.caller is not None else {}
        pack_metrics = {run_id: dict(c) for run_id, c in taken.items()}
        work = rounds.collect_work(self.state, now, pack_metrics=pack_metrics, refresh=refresh,
                                   recover=recover)
        if work:
            self.round_carries_work = work.carries_work
            self.round = asyncio.create_task(self._run_round(work))

    async def _run_round(self, work: RoundWork) -> None:
        if work.claims:
            try:
                claims = await self.database_claims(work, self.worker)
            except Exception:
                logger.exception("serving loop %s: claims failed", self.worker)
                claims = {}
            rounds.apply_claims(self.state, work, claims, time.monotonic())
            self.wake.set()
            await asyncio.sleep(0)  # let the loop start what was claimed before the writes begin
        result = RoundResult()
        try:
            await self.database_writes(work, self.worker, result)
        except Exception:
            # Only the writes the round did not report written are held again (RoundResult.unwritten):
            # one that committed and was written again would count its calls' cost twice.
            logger.exception("serving loop %s: database round failed", self.worker)
        finally:
            self.round = None
            self.round_carries_work = False
        self.report.written += rounds.apply_result(self.state, work, result, time.monotonic())
        self.wake.set()
