"""The serving loop's database rounds: everything the loop needs from PostgreSQL, done in ONE thread
(one connection), one round at a time, while the event loop goes on starting and finishing calls.

A round is three steps:
1. collect (`collect_work`, on the event loop): the claims that would refill the slots, the results
   whose write batch is due, give-backs, pack metrics, and when their time has come a refresh (which
   runs have due work) and recovery (expired leases, stragglers);
2. run (`claim_in_database`, then `write_in_database`, in the database thread): claims first, since
   the loop waits for them to start calls; then the writes (a transaction per run, fenced by the
   lease token), give-backs, the refresh and recovery, each its own transaction, one failing not
   stopping the others;
3. apply (`apply_claims`, `apply_result`, on the event loop): claimed blocks become ready packs,
   written runs that ended are let go, failed writes are held to be written again, and the refresh
   gives runs a slot or takes it away.

The one rule that keeps money exact: a write that committed is never written again. A second write
of the same outcomes would find their blocks no longer claimed under the token and record the calls
again as fenced-out attempts, counting their tokens and cost twice. So `write_in_database` fills its
result as it goes, and after a round that failed half way only the writes it did not report written
are held again (`RoundResult.unwritten`)."""

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from apps.core.ids import RunId
from apps.core.logcontext import log_context
from apps.counters.recording import metrics_flush
from apps.runs.services.claiming import Claim, ClaimedBlock, blocks_claim, blocks_release
from apps.runs.services.outcomes import RecordReport, outcomes_record, outcomes_write_failed, run_count_packs
from apps.runs.services.recovery import leases_expire, runs_finalize_stragglers
from apps.runs.serving import fairshare, pool
from apps.runs.serving.context import Demand, RunContext, load_context, runs_with_due_work
from apps.runs.serving.slots import HeldWrite, LoopState, Pack, Release, RunSlot
from apps.runs.transitions import RunStatus

logger = logging.getLogger(__name__)

# A write that fails this many rounds in a row is given up (its leases expire; the pump retries them).
WRITE_ATTEMPTS = 3
# A lane that says "wait" for longer than this gets its claimed-but-unstarted blocks back in the
# database, so they hold no lease, no slot and no parallelism while it is shut.
RELEASE_AFTER_SECONDS = 2.0
# A run whose claim found its parallelism held claims again when one of its calls here ends, or after
# this long (its calls may be on other processes), rather than in every round.
CLAIM_RECHECK_SECONDS = 0.1
SERVING_FUNCTION = "conveyor.runs.serve"


def _conf(name: str) -> Any:
    return settings.CONVEYOR[name]


@dataclass(frozen=True)
class ClaimRequest:
    run_id: RunId
    # How many blocks to claim, in whole packs.
    limit: int
    # The claim-ahead allowance the database adds to the run's parallelism bound.
    ahead: int
    # Results of the run held unwritten here: their blocks are claimed but no longer in calls.
    answered: int


@dataclass
class RoundWork:
    claims: list[ClaimRequest] = field(default_factory=list)
    writes: dict[RunId, HeldWrite] = field(default_factory=dict)
    releases: list[Release] = field(default_factory=list)
    pack_metrics: dict[RunId, dict[str, int]] = field(default_factory=dict)
    refresh: bool = False
    # With a refresh: the pass and key revision of each run the loop knows, so that the round loads
    # a context only for runs that are new or changed.
    known: dict[RunId, tuple[int, int, int]] = field(default_factory=dict)
    recover: bool = False

    def __bool__(self) -> bool:
        return bool(self.writes or self.releases or self.claims or self.refresh or self.recover
                    or self.pack_metrics)

    @property
    def carries_work(self) -> bool:
        """More than a look for work: an idle loop whose rounds only refresh is still idle."""
        return bool(self.writes or self.releases or self.claims)


@dataclass
class RoundResult:
    claims: dict[RunId, Claim] = field(default_factory=dict)
    reports: dict[RunId, RecordReport] = field(default_factory=dict)
    failed_writes: dict[RunId, HeldWrite] = field(default_factory=dict)
    demands: list[Demand] | None = None
    contexts: dict[RunId, RunContext | None] = field(default_factory=dict)

    def unwritten(self, work: RoundWork) -> dict[RunId, HeldWrite]:
        """The writes of `work` that did not commit: those that failed, and, when the round stopped
        half way, those it never reached. Never one it reported written."""
        return {run_id: held for run_id, held in work.writes.items() if run_id not in self.reports}


# --- 1. collect (event loop) ----------------------------------------------------------------------

def collect_work(state: LoopState, now: float, *, pack_metrics: dict[RunId, dict[str, int]],
                 refresh: bool, recover: bool) -> RoundWork:
    work = RoundWork(pack_metrics=pack_metrics)
    if state.writes.due(now, batch_seconds=_conf("SERVE_WRITE_BATCH_SECONDS"), stopping=state.stopping,
                        in_flight=state.in_flight):
        work.writes = state.writes.take()
    work.releases, state.releases = Release.merged(state.releases), []
    if not state.stopping:
        work.claims = claims_wanted(state, now)
        if refresh:
            work.refresh = True
            work.known = {run_id: (slot.ctx.current_pass, slot.ctx.key_revision, slot.demand.pool_revision)
                          for run_id, slot in state.slots.items()}
        work.recover = recover
    return work


def claims_wanted(state: LoopState, now: float) -> list[ClaimRequest]:
    """Each run's share of the slots plus a little ahead (SERVE_CLAIM_AHEAD of the share, at least
    one pack), less what it holds, in whole packs; none for a run that is waiting on something."""
    contenders = state.contenders()
    shares = fairshare.targets(state.ceiling, contenders) if contenders else {}
    wanted = []
    for slot in state.slots.values():
        if slot.ended or slot.exhausted or slot.budget_wait or slot.claim_pending or slot.claim_at > now:
            continue
        if pool.all_closed(state, slot, now, longer_than=RELEASE_AFTER_SECONDS):
            continue
        share = math.ceil(shares.get(slot.run_id, 0))
        pack = slot.ctx.pack_size
        ahead = max(pack, math.ceil(share * _conf("SERVE_CLAIM_AHEAD")))
        limit = share + ahead - slot.held
        limit = -(-limit // pack) * pack if limit > 0 else limit  # whole packs only
        if limit >= max(1, min(pack, share)):
            slot.claim_pending = True
            wanted.append(ClaimRequest(run_id=slot.run_id, limit=limit, ahead=ahead,
                                       answered=slot.unwritten))
    return wanted


# --- 2. run (database thread) ---------------------------------------------------------------------

def claim_in_database(work: RoundWork, worker: str) -> dict[RunId, Claim]:
    """The first part of a round: the claims the loop waits for to refill its slots. Blocks whose
    calls came back and whose results are not written yet (in this round or a later one) are not in
    flight, so they do not count against a run's bound."""
    claims = {}
    for request in work.claims:
        try:
            claims[request.run_id] = blocks_claim(run_id=request.run_id, limit=request.limit, worker=worker,
                                                  ahead=request.ahead, answered=request.answered)
        except Exception:
            logger.exception("could not claim blocks of run %s", request.run_id)
    return claims


def write_in_database(work: RoundWork, worker: str, result: RoundResult) -> None:
    """The rest of a round, in this order: writes, pack metrics, give-backs, the refresh and recovery.
    Each operation is its own transaction; one failing does not stop the others. `result` is filled
    as each step ends, so whoever called this knows what committed even if it raises."""
    for run_id, held in work.writes.items():
        try:
            result.reports[run_id] = outcomes_record(
                run_id=run_id, outcomes=held.outcomes, worker=worker,
                secrets=held.ctx.secrets or (held.ctx.api_key,),
                key_revision=held.ctx.key_revision)
        except Exception as exc:
            result.failed_writes[run_id] = held
            _tell_write_failed(held, exc)
    for run_id, counts in work.pack_metrics.items():
        try:
            run_count_packs(run_id=run_id, counts=counts)
        except Exception:
            logger.exception("could not count packs of run %s", run_id)
    for release in work.releases:
        try:
            blocks_release(run_id=release.run_id, token=release.token, block_ids=list(release.block_ids))
        except Exception:  # they stay claimed until their lease expires: nothing is lost
            logger.exception("could not give back %d block(s) of run %s", len(release.block_ids),
                             release.run_id)
    if work.refresh:
        _refresh_in_database(work, result)
    if work.recover:
        try:
            leases_expire()
            runs_finalize_stragglers()
        except Exception:  # the pump recovers too
            logger.exception("serving loop recovery failed")
    try:  # what this round's writes and the calls since the last round counted: one Redis write
        metrics_flush()
    except Exception:
        logger.warning("could not flush metrics", exc_info=True)


def _tell_write_failed(held: HeldWrite, error: Exception) -> None:
    """DB_WRITE_FAILED, best effort: telling must never turn into a failure of its own."""
    tries = held.tries + 1
    try:
        with log_context(run_id=held.ctx.run_id, key_id=held.ctx.key_id, secrets=(held.ctx.api_key,)):
            outcomes_write_failed(run_id=held.ctx.run_id, outcomes=held.outcomes, error=error,
                                  function_name=SERVING_FUNCTION, tries=tries,
                                  gave_up=tries >= WRITE_ATTEMPTS)
    except Exception:
        logger.exception("could not record a failed write of run %s", held.ctx.run_id)


def _refresh_in_database(work: RoundWork, result: RoundResult) -> None:
    try:
        result.demands = runs_with_due_work()
    except Exception:  # the next refresh tries again
        logger.exception("could not read the runs with due work")
        return
    for demand in result.demands:
        if work.known.get(demand.run_id) != (demand.current_pass, demand.key_revision, demand.pool_revision):
            try:
                result.contexts[demand.run_id] = load_context(demand.run_id)
            except Exception:
                logger.exception("could not load run %s", demand.run_id)


# --- 3. apply (event loop) ------------------------------------------------------------------------

def apply_claims(state: LoopState, work: RoundWork, claims: dict[RunId, Claim], now: float) -> None:
    for request in work.claims:
        slot = state.slots.get(request.run_id)
        if slot is not None:
            slot.claim_pending = False
    for request in work.claims:
        claim = claims.get(request.run_id)
        if claim is not None:
            take_claim(state, request, claim, now)


def take_claim(state: LoopState, request: ClaimRequest, claim: Claim, now: float) -> None:
    """Claimed blocks become ready packs, to start by half the lease margin from now (the lease is the
    call's timeout plus the margin: half for waiting here, half for writing the result behind it)."""
    slot = state.slots.get(request.run_id)
    if slot is None:
        return
    if claim.run_status != RunStatus.RUNNING:
        state.end_run(request.run_id)
        return
    slot.budget_wait = claim.budget_wait
    # Short of what was asked because the run's parallelism is held (by calls here whose answers the
    # claim did not know of yet, or by other processes): not exhausted. The run still has work and
    # claims again next round; an exhausted run would wait for the next refresh, and post on its
    # lanes' boards no more than it holds (so an owner kept below its share by its own claims looked
    # content, and the others took its part of the lane: lanewide.py).
    if not claim.blocks:
        slot.exhausted = not (claim.budget_wait or claim.at_parallelism)
        if claim.at_parallelism:  # nothing frees before one of its calls ends (starting.py)
            slot.claim_at = now + CLAIM_RECHECK_SECONDS
        return
    assert claim.lease_token is not None  # a claim that took blocks has its token
    if len(claim.blocks) < request.limit and not claim.at_parallelism:
        slot.exhausted = True
    if state.stopping or slot.ended:
        state.releases.append(Release(run_id=request.run_id, token=claim.lease_token,
                                      block_ids=tuple(b.id for b in claim.blocks)))
        return
    size = slot.ctx.pack_size
    start_by = now + _conf("LEASE_MARGIN_SECONDS") / 2
    # A pack goes to one model: blocks moved on to a fallback model are packed apart.
    by_model: dict[int, list[ClaimedBlock]] = {}
    for block in claim.blocks:
        by_model.setdefault(block.model_index, []).append(block)
    for model_index, blocks in sorted(by_model.items()):
        for i in range(0, len(blocks), size):
            slot.ready.append(Pack(blocks=blocks[i:i + size], token=claim.lease_token, start_by=start_by,
                                   model_index=model_index))


def apply_result(state: LoopState, work: RoundWork, result: RoundResult, now: float) -> int:
    """What the round wrote and found; returns how many outcomes it wrote."""
    written = 0
    for run_id, held in work.writes.items():
        slot = state.slots.get(run_id)
        if slot is not None:
            slot.unwritten -= len(held.outcomes)
    for run_id, report in result.reports.items():
        written += report.written
        slot = state.slots.get(run_id)
        if slot is not None:
            slot.budget_wait = False  # settled calls gave their reservations back
        if report.run_status != RunStatus.RUNNING:
            state.end_run(run_id)
    for held in result.unwritten(work).values():
        hold_again_or_give_up(state, held, now)
    if result.demands is not None:
        refresh(state, result.demands, result.contexts)
    return written


def hold_again_or_give_up(state: LoopState, held: HeldWrite, now: float) -> None:
    """A write that did not commit is written again with the next batch, up to WRITE_ATTEMPTS; then
    given up (the round that failed the last time said so, DB_WRITE_FAILED gave_up): the blocks stay
    claimed until their leases expire and the pump hands them out again."""
    tries = held.tries + 1
    if tries < WRITE_ATTEMPTS:
        state.hold_for_writing(held.ctx, held.outcomes, now, tries=tries)


def refresh(state: LoopState, demands: list[Demand], contexts: dict[RunId, RunContext | None]) -> None:
    """A new picture of the runs with due work: new runs get a slot, changed ones (a new pass, a
    changed key) a new context once nothing of theirs is held, runs with nothing due and nothing held
    here are let go."""
    state.demands = {d.run_id: d for d in demands}
    for demand in demands:
        slot = state.slots.get(demand.run_id)
        if demand.run_id in contexts:
            ctx = contexts[demand.run_id]
            if ctx is None:
                continue
            if slot is None:
                slot = state.slots[demand.run_id] = RunSlot(ctx=ctx, demand=demand)
            elif not slot.held or slot.ctx.current_pass == ctx.current_pass:
                # (A pool that changed takes effect at once: calls in flight keep their own route.)
                slot.ctx = ctx
                slot.keys_out.clear()
        if slot is None:
            continue
        slot.demand = demand
        slot.exhausted = slot.ended = False
        slot.elsewhere = max(0, demand.claimed - slot.held - slot.unwritten)
    for run_id, slot in list(state.slots.items()):
        if run_id not in state.demands and slot.droppable:
            del state.slots[run_id]

