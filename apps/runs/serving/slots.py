"""What a serving loop holds in memory: a slot per run it serves, a slot per lane it calls, and the
results waiting for the next write. The database stays the truth: everything here can be lost with
the process (leases expire, lane entries expire) and nothing is lost with it."""

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from uuid import UUID

from apps.core.ids import RunId
from apps.runs.services.claiming import ClaimedBlock
from apps.runs.services.decisions import Outcome
from apps.runs.serving import fairshare
from apps.runs.serving.context import Demand, RunContext

LeaseToken = UUID


@dataclass
class Pack:
    """Blocks claimed together that go out in one call."""

    blocks: list[ClaimedBlock]
    token: LeaseToken
    # After this (monotonic) a call could outlive the lease: the pack is given back, never started.
    start_by: float = float("inf")
    # Which of the run's models its blocks are on (Run.models; packs never mix models).
    model_index: int = 0

    @property
    def size(self) -> int:
        return len(self.blocks)


@dataclass(frozen=True)
class Release:
    """Claimed blocks no call will be made for: back to pending with their attempt (blocks_release)."""

    run_id: RunId
    token: LeaseToken
    block_ids: tuple[int, ...]

    @classmethod
    def of(cls, run_id: RunId, pack: Pack) -> "Release":
        return cls(run_id=run_id, token=pack.token, block_ids=tuple(b.id for b in pack.blocks))

    @classmethod
    def merged(cls, releases: list["Release"]) -> list["Release"]:
        """One release per run and lease (one transaction each), however many packs gave blocks back:
        a loop stopping with hundreds of single-block packs ready wrote one transaction per block,
        which held its results unwritten (and their blocks claimed) for tens of seconds."""
        by_lease: dict[tuple[RunId, LeaseToken], list[int]] = {}
        for release in releases:
            by_lease.setdefault((release.run_id, release.token), []).extend(release.block_ids)
        return [cls(run_id=run_id, token=token, block_ids=tuple(ids))
                for (run_id, token), ids in by_lease.items()]


@dataclass
class RunSlot:
    ctx: RunContext
    demand: Demand
    ready: deque[Pack] = field(default_factory=deque)
    in_flight: int = 0
    # Results held for the next write, or being written: their blocks are still claimed.
    unwritten: int = 0
    # The last claim found no more due blocks: ask again after the next refresh.
    exhausted: bool = False
    budget_wait: bool = False
    # Not active any more (paused, canceling, ended): give back, claim nothing.
    ended: bool = False
    claim_pending: bool = False
    waiting_since: float = field(default_factory=time.monotonic)
    # Blocks held by other processes (claimed in the database, not here), as of the last refresh.
    elsewhere: int = 0
    # The gate said the run's parallelism is used (by calls here or elsewhere): not before then.
    room_at: float = 0.0
    # A claim found the run's parallelism held: claim again once a call of it ends here, or then.
    claim_at: float = 0.0
    # Start pacing (starting.pace): calls the run may start at once, as of pace_at.
    pace_tokens: float = 0.0
    pace_at: float = 0.0
    # The run's pool (pool.py): blocks in calls per key; keys whose workspace's cache holds the
    # prefix, and keys with a first (warming) call out; keys refused during a call, skipped until
    # the run's context is loaded again without them.
    key_in_flight: Counter[int] = field(default_factory=Counter)
    warm: set[int] = field(default_factory=set)
    warming: set[int] = field(default_factory=set)
    keys_out: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.warm |= self.ctx.warm_keys

    @property
    def run_id(self) -> RunId:
        return self.ctx.run_id

    @property
    def parallelism(self) -> int:
        """What the run may have in calls: one until a cacheable run's first call has answered
        (cache warming), then its parallelism."""
        return self.demand.parallelism if self.demand.cache_warmed else 1

    @property
    def buffered(self) -> int:
        return sum(p.size for p in self.ready)

    @property
    def held(self) -> int:
        return self.in_flight + self.buffered

    @property
    def droppable(self) -> bool:
        """Nothing of this run is held here: no pack, no call, no result to write."""
        return not self.held and not self.unwritten

    def give_back_all(self) -> list[Release]:
        releases = [Release.of(self.run_id, pack) for pack in self.ready]
        self.ready.clear()
        return releases

    def give_back_stale(self, now: float) -> list[Release]:
        """Packs that waited so long that a call could outlive their lease (a lane that keeps saying
        "in a moment" must not leave a lease to expire under a buffered block)."""
        releases = []
        while self.ready and self.ready[0].start_by < now:
            releases.append(Release.of(self.run_id, self.ready.popleft()))
        return releases


@dataclass
class LaneSlot:
    closed_until: float = 0.0
    reason: str = ""
    # How long this loop's calls on the lane take (seconds, smoothed; 0: none has ended yet).
    latency: float = 0.0
    # When (monotonic) the lane last refused this loop for its window or a rate bucket: the lane was
    # saturated then (lanewide.py shares what is in flight).
    refused_at: float = float("-inf")
    # When this loop's ceiling last held back a run of this lane that had ready blocks and room.
    ceiling_bound_at: float = float("-inf")

    def call_ended(self, took: float) -> None:
        self.latency = took if self.latency <= 0 else self.latency * 0.9 + took * 0.1
        if self.reason == "window":  # a call of ours ended: the window has room again
            self.closed_until = 0.0


@dataclass
class HeldWrite:
    """Results of one run waiting to be written, with the context they were called under (so a write
    never depends on the run's slot still being there) and how many writes of them failed already."""

    ctx: RunContext
    outcomes: list[Outcome]
    tries: int = 0


class WriteBuffer:
    """Results wait here for the next write batch (SERVE_WRITE_BATCH_SECONDS), so each transaction's
    fixed cost is shared by many blocks. They still hold their claims in the database."""

    def __init__(self) -> None:
        self.by_run: dict[RunId, HeldWrite] = {}
        # When the oldest result held came back (monotonic); None: nothing held.
        self.since: float | None = None

    def __bool__(self) -> bool:
        return bool(self.by_run)

    def hold(self, ctx: RunContext, outcomes: list[Outcome], now: float, *, tries: int = 0) -> None:
        held = self.by_run.get(ctx.run_id)
        if held is None:
            self.by_run[ctx.run_id] = HeldWrite(ctx=ctx, outcomes=list(outcomes), tries=tries)
        else:
            held.outcomes.extend(outcomes)
            held.tries = max(held.tries, tries)
        if self.since is None:
            self.since = now

    def due(self, now: float, *, batch_seconds: float, stopping: bool, in_flight: int) -> bool:
        """Write now, or gather more first: when stopping, when no call is left in flight (the last
        results of a run are not kept waiting), or once the oldest result has waited its batch time."""
        if self.since is None:
            return False
        return stopping or not in_flight or now - self.since >= batch_seconds

    def due_at(self, batch_seconds: float) -> float | None:
        return None if self.since is None else self.since + batch_seconds

    def take(self) -> dict[RunId, HeldWrite]:
        taken, self.by_run, self.since = self.by_run, {}, None
        return taken


@dataclass
class LoopState:
    """What the three parts of a serving loop share: the runs and lanes it serves, its calls in
    flight, and what waits for the database (give-backs, results to write)."""

    # The most blocks in calls at once in this process (capacity.py; fixed when given, as tests do).
    ceiling: int
    # What sets the ceiling: the lanes, SERVE_MAX_IN_FLIGHT or the open files (capacity.py).
    ceiling_by: str = "SERVE_MAX_IN_FLIGHT"
    slots: dict[RunId, RunSlot] = field(default_factory=dict)
    lanes: dict[str, LaneSlot] = field(default_factory=dict)
    # The runs with due work as the last refresh saw them (help and hand-over look at it).
    demands: dict[RunId, Demand] = field(default_factory=dict)
    # Blocks in calls right now (the ceiling bounds it).
    in_flight: int = 0
    stopping: bool = False
    releases: list[Release] = field(default_factory=list)
    writes: WriteBuffer = field(default_factory=WriteBuffer)
    # Starts refused because the owner held its lane-wide fair share (lanewide.py), since the start.
    fair_share_refusals: int = 0

    def contenders(self) -> list[fairshare.Contender]:
        """Each run served here, with how many of its blocks it could have in calls here: its
        parallelism less what other processes hold, and, once its due work is all claimed (or its
        budget waits), no more than it holds. Both the claims and the starts share slots by these."""
        result = []
        for slot in self.slots.values():
            if slot.ended:
                continue
            room = max(0, slot.parallelism - slot.elsewhere)
            want = min(room, slot.held) if slot.exhausted or slot.budget_wait else room
            want = max(want, slot.in_flight)
            if want <= 0:
                continue
            result.append(fairshare.Contender(
                run_id=slot.run_id, owner_id=slot.ctx.owner_id, weight=slot.demand.priority,
                held=slot.in_flight, demand=want, waiting_since=slot.waiting_since))
        return result

    def lane_of(self, slot: RunSlot) -> LaneSlot:
        return self.lanes.setdefault(slot.ctx.lane.name, LaneSlot())

    def give_back(self, slot: RunSlot) -> None:
        self.releases.extend(slot.give_back_all())

    def end_run(self, run_id: RunId) -> None:
        """The run is not active any more (paused, canceling, ended): what is buffered goes back."""
        slot = self.slots.get(run_id)
        if slot is not None:
            slot.ended = True
            self.give_back(slot)

    def hold_for_writing(self, ctx: RunContext, outcomes: list[Outcome], now: float, *,
                         tries: int = 0) -> None:
        self.writes.hold(ctx, outcomes, now, tries=tries)
        slot = self.slots.get(ctx.run_id)
        if slot is not None:
            slot.unwritten += len(outcomes)
