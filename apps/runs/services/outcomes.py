"""Recording call outcomes: fenced by the lease token, counted on the run in the same transaction.

Recording a batch is an ordered list of steps (`STEPS`), each short and run in this order inside one
transaction; key-level effects (throttle, invalid key, pausing the key's other runs) follow after it
(`apply_key_effects`). What each outcome does to its block is decided in
apps.runs.services.decisions; how the blocks move is apps.runs.transitions.

A worker whose lease was taken over (it was presumed dead and its block handed out again) still
records its Attempt, since the call happened and was billed, but the fence leaves its block out, so
the block's state and the run's counts are written exactly once, by the lease holder.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from apps.core.db import insert_instances
from apps.core.ids import RunId
from apps.core.logcontext import log_context
from apps.counters.recording import record_block_finished, record_call, record_usage
from apps.failures.models import EventCode, LogLevel, PipelineFailure
from apps.failures.services import diagnostic_log, event_code_for, failure_record
from apps.keys.services import key_mark_invalid
from apps.providers.errors import FailureKind, ProviderFailure
from apps.providers.usage import TokenUsage
from apps.runs.caching import prefix_sha256
from apps.runs.dispatch import run_dispatch_on_commit
from apps.runs.models import Attempt, AttemptOutcome, Block, BlockStatus, PausedCause, Run, RunKey
from apps.runs.services.budget import spent_reason
from apps.runs.services.decisions import KEY_EVENT_CODES, KEY_PAUSE_CAUSES, Entry, Outcome, decide, fenced_out
from apps.runs.services.finalize import run_finalize
from apps.runs.services.lifecycle import (
    pool_key_leave,
    pool_key_rejoin,
    runs_pause_for_key,
    runs_without_keys,
)
from apps.runs.signals import blocks_settled
from apps.runs.transitions import BLOCK_COUNTER, RunStatus, lock_run

FAILING_FUNCTION = "conveyor.runs.serve"
# The most of an answer a structured run's schema refused that its dead-letter row keeps.
RAW_OUTPUT_LIMIT = 100_000

logger = logging.getLogger(__name__)


@dataclass
class RecordReport:
    run_status: str
    written: int = 0
    fenced_out: int = 0


@dataclass
class Recording:
    """One batch of outcomes of one run on its way into the database; each step adds to it."""

    run_id: RunId
    outcomes: list[Outcome]
    worker: str = ""
    secrets: tuple[str, ...] = ()
    now: datetime = field(default_factory=timezone.now)
    run: Run = field(init=False)
    held: dict[int, Block] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    report: RecordReport = field(init=False)
    # Key-level problems seen in this batch (401/403, 402): handled after the transaction.
    key_failures: list[ProviderFailure] = field(default_factory=list)
    # The entries those came with (the first one names the call in the AUTH_FAILED diagnostic).
    key_rejections: list[Entry] = field(default_factory=list)
    # The budget reservations of the blocks this batch writes, given back to the run.
    released_usd: Decimal = Decimal(0)

    @property
    def written(self) -> list[Entry]:
        return [entry for entry in self.entries if entry.block is not None]


# --- the steps, in the order they run --------------------------------------------------------------

def lock_and_fence(rec: Recording) -> None:
    """Run row first (the engine's lock order), then the blocks still held under each call's lease."""
    rec.run = lock_run(rec.run_id)
    rec.report = RecordReport(run_status=rec.run.status)
    tokens = {o.block_id: o.lease_token for o in rec.outcomes}
    rec.held = Block.objects.lock_held(tokens)
    rec.released_usd = sum((b.reserved_usd for b in rec.held.values()), Decimal(0))


def decide_each(rec: Recording) -> None:
    """A decision per outcome (decisions.decide), or for a call the fence left out, what its Attempt
    says (decisions.fenced_out)."""
    for outcome in rec.outcomes:
        block = rec.held.pop(outcome.block_id, None)  # pop: a block answers once per batch
        if block is None:
            rec.entries.append(Entry(outcome, fenced_out(outcome)))
            rec.report.fenced_out += 1
            continue
        decision = decide(outcome, block, rec.run, rec.now)
        rec.entries.append(Entry(outcome, decision, block))
        rec.report.written += 1
        if decision.attempt_outcome == AttemptOutcome.KEY_REJECTED and outcome.failure:
            rec.key_failures.append(outcome.failure)
            rec.key_rejections.append(rec.entries[-1])


def write_blocks(rec: Recording) -> None:
    """The held blocks to their decisions' states (transitions: write_outcomes)."""
    Block.objects.write_outcomes(rec.written, run=rec.run, now=rec.now)


def write_attempts(rec: Recording) -> None:
    """One Attempt per call, accepted or fenced out: every call on the invoice can be traced."""
    run = rec.run
    attempts = []
    for entry in rec.entries:
        outcome, decision, failure = entry.outcome, entry.decision, entry.outcome.failure
        attempts.append(Attempt(
            run_id=run.pk, block_id=outcome.block_id, number=outcome.number or outcome.attempt,
            pass_number=run.current_pass, outcome=decision.attempt_outcome,
            accepted=entry.block is not None, http_status=failure.http_status if failure else 200,
            error_code=decision.error_code, error_message=decision.error_message,
            request_id=(failure.request_id if failure else outcome.request_id)[:100],
            latency_ms=outcome.latency_ms, model=outcome.model or run.model, worker=rec.worker[:200],
            key_id=outcome.key_id if outcome.key_id is not None else run.key_id,
            input_tokens=outcome.usage.input_tokens, output_tokens=outcome.usage.output_tokens,
            cache_creation_input_tokens=outcome.usage.cache_creation_input_tokens,
            cache_read_input_tokens=outcome.usage.cache_read_input_tokens,
            cost_usd=outcome.cost_usd,
            started_at=outcome.started_at, batch_id=outcome.batch_id,
        ))
    insert_instances(attempts)


def resolve_failures(rec: Recording) -> None:
    """A dead-lettered block that succeeds (after a replay or reseed) resolves its failure row."""
    succeeded = [e.block.pk for e in rec.written
                 if e.block is not None and e.decision.status == BlockStatus.SUCCEEDED]
    if succeeded:
        PipelineFailure.objects.filter(block_id__in=succeeded, resolved_at__isnull=True).update(
            resolved_at=rec.now, next_retry_at=None,
            resolution_note=f"block succeeded on pass {rec.run.current_pass}",
        )


def count_on_run(rec: Recording) -> None:
    """Counts, tokens and cost onto the run; pause it if its key was refused or its budget spent.
    Every call is on the invoice, accepted or not: the run's usage is the sum of its attempts."""
    run = rec.run
    counts = dict.fromkeys(BLOCK_COUNTER, 0)
    for entry in rec.written:
        if entry.decision.status in counts:
            counts[entry.decision.status] += 1
    usage = sum((o.usage for o in rec.outcomes), TokenUsage())
    cost = sum((o.cost_usd for o in rec.outcomes), Decimal(0))
    batch_cost = sum((o.cost_usd for o in rec.outcomes if o.batch_id is not None), Decimal(0))
    runs = Run.objects.filter(pk=run.pk)
    runs.update(
        **{BLOCK_COUNTER[status]: F(BLOCK_COUNTER[status]) + n for status, n in counts.items()},
        input_tokens=F("input_tokens") + usage.input_tokens,
        output_tokens=F("output_tokens") + usage.output_tokens,
        cache_creation_input_tokens=F("cache_creation_input_tokens") + usage.cache_creation_input_tokens,
        cache_read_input_tokens=F("cache_read_input_tokens") + usage.cache_read_input_tokens,
        cost_usd=F("cost_usd") + cost,
        reserved_usd=F("reserved_usd") - rec.released_usd,
        batch_cost_usd=F("batch_cost_usd") + batch_cost,
    )
    budget = run.options.get("max_cost_usd")
    paused = 0
    if rec.key_failures and _keys_left_pool(rec):
        failure = rec.key_failures[0]
        paused = runs.pause(cause=KEY_PAUSE_CAUSES[failure.kind],
                            reason=f"provider refused the key: {failure.code}: {failure.message}")
    elif budget is not None and run.cost_usd + cost >= Decimal(str(budget)):
        paused = runs.pause(cause=PausedCause.BUDGET,
                            reason=spent_reason(budget=Decimal(str(budget)), cost=run.cost_usd + cost))
    if paused:
        rec.report.run_status = RunStatus.PAUSED
    if not run.cache_warmed and (run.options or {}).get("cache") and counts[BlockStatus.SUCCEEDED]:
        # A call has answered: its prefix is in the cache, the rest of the pass may fan out.
        runs.update(cache_warmed=True,
                    cache_prefix_sha256=prefix_sha256(run.call_spec, packed=run.pack_size > 1))
    if (run.options or {}).get("cache"):
        # Each key's workspace has its own cache: the keys that answered are warm now.
        warmed = {entry.outcome.key_id for entry in rec.written
                  if entry.decision.status == BlockStatus.SUCCEEDED and entry.outcome.key_id is not None}
        if warmed:
            RunKey.objects.filter(run_id=run.pk, key_id__in=warmed,
                                  cache_warmed=False).update(cache_warmed=True)


def _keys_left_pool(rec: Recording) -> bool:
    """The keys refused in this batch leave the run's pool; True when no key is left (the run must
    pause). A run without a pool (made before pools) has only its key: True."""
    run = rec.run
    for entry in rec.key_rejections:
        failure = entry.outcome.failure
        assert failure is not None  # a key rejection is a failure
        key_id = entry.outcome.key_id if entry.outcome.key_id is not None else run.key_id
        if key_id is not None:
            pool_key_leave(key_id=key_id, cause=KEY_PAUSE_CAUSES[failure.kind], run_ids=[run.pk],
                           reason=f"provider refused the key: {failure.code}: {failure.message}")
    return runs_without_keys(Run.objects.filter(pk=run.pk)).exists()


def dead_letter(rec: Recording) -> None:
    """Terminal failures into pipeline_failures (with a redacted snapshot); retries into the
    diagnostic log. Both best-effort: they never undo the block's own state change."""
    run = rec.run
    for entry in rec.written:
        assert entry.block is not None  # written: the fence kept its block
        with log_context(block_uid=entry.block.uid, attempt=entry.outcome.attempt,
                         correlation_id=entry.outcome.correlation_id or None, key_id=run.key_id):
            _dead_letter_one(rec, entry)


def _dead_letter_one(rec: Recording, entry: Entry) -> None:
    run = rec.run
    outcome, decision, block = entry.outcome, entry.decision, entry.block
    assert block is not None  # written: the fence kept its block
    failure = outcome.failure
    http_status = failure.http_status if failure else None
    if decision.status == BlockStatus.FAILED:
        context = {"uid": block.uid, "block_index": block.block_index, "model": run.model,
                   "request_id": failure.request_id if failure else "",
                   "partial_text": (failure.partial_text[:2000] if failure else ""),
                   "pass": run.current_pass}
        if failure is not None and failure.kind == FailureKind.OUTPUT_INVALID:
            # The answer the schema refused, whole (up to RAW_OUTPUT_LIMIT), for the operator to read.
            context["raw_output"] = failure.partial_text[:RAW_OUTPUT_LIMIT]
        failure_record(
            run_id=run.pk, block_id=block.pk, failing_function=FAILING_FUNCTION,
            caller_function="conveyor.runs.serving.calls", error_code=decision.error_code,
            error_message=decision.error_message, http_status=http_status,
            attempt_count=outcome.attempt, payload_snapshot=outcome.payload_snapshot, context=context,
            event_code=event_code_for(decision.error_code, http_status), secrets=rec.secrets,
        )
    elif decision.attempt_outcome in (AttemptOutcome.RETRY, AttemptOutcome.THROTTLED):
        diagnostic_log(
            function_name=FAILING_FUNCTION, event_code=EventCode.PIPELINE_RETRY,
            message=f"{decision.error_code}: {decision.error_message}",
            metadata={"attempt": outcome.attempt, "outcome": decision.attempt_outcome,
                      "http_status": http_status,
                      **({"raw_output": failure.partial_text[:2000]}
                         if failure is not None and failure.kind == FailureKind.OUTPUT_INVALID else {})},
            run_id=run.pk, block_id=block.pk, secrets=rec.secrets,
        )


def announce_settled(rec: Recording) -> None:
    """Blocks this batch ended (succeeded, failed or canceled for good), told in this transaction:
    a pipeline hands a success on to its next step here, so that the next block exists exactly when
    the result does (a fenced-out or rolled-back write hands nothing on)."""
    settled = {entry.block.pk: entry.decision.status for entry in rec.written
               if entry.block is not None and entry.decision.status in BLOCK_COUNTER}
    if settled:
        blocks_settled.send(sender=Run, run_id=rec.run.pk, settled=settled)


def finalize(rec: Recording) -> None:
    """End the run if this batch finished it. The run row is locked: when its counts (with this
    batch's) leave blocks open and it is not being canceled, it cannot end now, and the two queries
    that would say so are not made (the pump's finalize of stragglers does not rely on counts)."""
    run = rec.run
    finished = sum(1 for entry in rec.written if entry.decision.status in BLOCK_COUNTER)
    if run.status == RunStatus.RUNNING and run.terminal_blocks + finished < run.total_blocks:
        return
    ended = run_finalize(run_id=rec.run.pk)
    if ended:
        rec.report.run_status = ended


STEPS: tuple[Callable[[Recording], None], ...] = (
    lock_and_fence, decide_each, write_blocks, write_attempts, resolve_failures, count_on_run,
    dead_letter, announce_settled, finalize,
)


PACK_COUNTERS = ("initial_pack_count", "packs_processed", "split_events", "packed_blocks")


def run_count_packs(*, run_id: RunId, counts: dict[str, int]) -> None:
    """Add a serving loop's packing counts to the run (apps.runs.serving.calls.PackCaller)."""
    changes = {name: F(name) + n for name, n in counts.items() if name in PACK_COUNTERS and n}
    if changes:
        Run.objects.filter(pk=run_id).update(**changes)


def outcomes_record(*, run_id: RunId, outcomes: list[Outcome], worker: str = "",
                    secrets: tuple[str, ...] = (), key_revision: int | None = None) -> RecordReport:
    """Record a batch of outcomes of one run in one transaction, then apply key-level effects.

    Raises only if the transaction did not commit: once it has, nothing after it may raise, or the
    caller would take the write for failed and write it again (its calls recorded a second time as
    fenced-out attempts, their cost counted twice). A key effect that fails is logged; the key's
    other runs meet the refusal on their own next call."""
    rec = Recording(run_id=run_id, outcomes=outcomes, worker=worker, secrets=secrets)
    with log_context(run_id=run_id, secrets=secrets):
        with transaction.atomic():
            for step in STEPS:
                step(rec)
        try:
            count_in_metrics(rec)
            apply_key_effects(rec, key_revision=key_revision)
        except Exception:
            logger.exception("outcomes of run %s written; what follows the write failed", run_id)
    return rec.report


def outcomes_write_failed(*, run_id: RunId, outcomes: list[Outcome], error: BaseException,
                          function_name: str, tries: int, gave_up: bool) -> None:
    """A result write that failed (its transaction rolled back: the blocks are still claimed, and
    written again by the caller, or run again when their leases expire): DB_WRITE_FAILED, in the
    log with the traceback and in diagnostic_logs (best effort: the database may be what failed).
    A connection the error left unusable is closed first, so the diagnostic gets a fresh one."""
    if not connection.in_atomic_block and connection.connection is not None and not connection.is_usable():
        connection.close()
    verdict = "gave up; their leases will expire and the blocks run again" if gave_up else "will retry"
    diagnostic_log(
        function_name=function_name, event_code=EventCode.DB_WRITE_FAILED, level=LogLevel.ERROR,
        message=f"could not write {len(outcomes)} outcome(s) (try {tries}, {verdict}): "
                f"{type(error).__name__}: {error}",
        metadata={"outcomes": len(outcomes), "tries": tries, "gave_up": gave_up,
                  "error": type(error).__name__, "block_ids": [o.block_id for o in outcomes[:100]],
                  "correlation_ids": sorted({o.correlation_id for o in outcomes if o.correlation_id})[:100]},
        run_id=run_id, exc_info=error,
    )


# Batch results that are no answer from the model (the request was never run): not a provider call.
UNANSWERED_BATCH_CODES = ("batch_expired", "batch_canceled")


def count_in_metrics(rec: Recording) -> None:
    """After the commit (a rolled-back batch is written again, and must not count twice): tokens and
    cost of every call on the invoice, the blocks this batch finished, and the batch's requests as
    calls (live calls are counted where they end, in apps.runs.serving.calls). In memory only: the
    caller's flush sends them to Redis (apps.counters.recording)."""
    model = rec.run.model
    for outcome in rec.outcomes:
        # Under the model called (a fallback's tokens are its own), else the run's.
        record_usage(model=outcome.model or model, usage=outcome.usage, cost=outcome.cost_usd)
        failure = outcome.failure
        if outcome.batch_id is not None and not (failure and failure.code in UNANSWERED_BATCH_CODES):
            record_call(model=model, failure=failure, latency_seconds=None)
    for entry in rec.written:
        if entry.decision.status in BLOCK_COUNTER:
            record_block_finished(status=entry.decision.status, error_code=entry.decision.error_code)


def apply_key_effects(rec: Recording, *, key_revision: int | None) -> None:
    """After the run's transaction (key rows are locked after run rows, never inside them): a
    rejected key is marked invalid and leaves the pool of every run on it (a run pauses when no key
    of its pool is left). If the key was changed since the call read it (its owner fixed it
    meanwhile), the rejection is about the old secret: it rejoins this run's pool and the run resumes
    if that paused it. (Throttling is the lanes' business: apps.lanes.gate, in the serving loop.)

    The rejection fails no block (they wait, attempts refunded), so this is where it is told:
    AUTH_FAILED in the log and in diagnostic_logs, once per key per batch of outcomes."""
    by_key: dict[int, list[Entry]] = {}
    for entry in rec.key_rejections:
        key_id = entry.outcome.key_id if entry.outcome.key_id is not None else rec.run.key_id
        if key_id is not None:
            by_key.setdefault(key_id, []).append(entry)
    for key_id, entries in by_key.items():
        first = entries[0]
        revision = first.outcome.key_revision if first.outcome.key_revision is not None else key_revision
        _apply_key_effect(rec, key_id, first, len(entries), revision)


def _apply_key_effect(rec: Recording, key_id: int, first: Entry, calls: int,
                      key_revision: int | None) -> None:
    failure = first.outcome.failure
    assert failure is not None  # a key rejection is a failure
    error = f"{failure.code}: {failure.message}"
    with log_context(key_id=key_id, block_uid=first.block.uid if first.block else None,
                     attempt=first.outcome.attempt, correlation_id=first.outcome.correlation_id or None):
        if failure.kind == FailureKind.KEY_INVALID and not key_mark_invalid(
            key_id=key_id, error=error, revision=key_revision
        ):
            pool_key_rejoin(key_id=key_id, run_id=rec.run.pk)
            resumed = Run.objects.filter(pk=rec.run.pk).paused_by(PausedCause.KEY_REJECTED).resume()
            if resumed:
                run_dispatch_on_commit(run_id=rec.run.pk)
            _key_diagnostic(rec, failure, first, key_id, calls, level=LogLevel.WARNING,
                            message=f"the provider rejected key {key_id} ({error}), but the key was "
                                    "changed since the call read it: the run goes on", paused=0)
            return
        paused = runs_pause_for_key(key_id=key_id, cause=KEY_PAUSE_CAUSES[failure.kind],
                                    reason=f"provider refused the key: {error}")
        _key_diagnostic(rec, failure, first, key_id, calls, level=LogLevel.ERROR,
                        message=f"the provider refused key {key_id} ({error}): it left the pools of "
                                "its runs; runs with no key left are paused "
                                f"({KEY_PAUSE_CAUSES[failure.kind]})",
                        paused=paused)


def _key_diagnostic(rec: Recording, failure: ProviderFailure, first: Entry, key_id: int, calls: int, *,
                    level: LogLevel, message: str, paused: int) -> None:
    diagnostic_log(
        function_name=FAILING_FUNCTION, event_code=KEY_EVENT_CODES[failure.kind], level=level,
        message=message,
        metadata={"key_id": key_id, "http_status": failure.http_status, "error_code": failure.code,
                  "cause": KEY_PAUSE_CAUSES[failure.kind], "request_id": failure.request_id,
                  "calls_rejected": calls, "other_runs_paused": paused},
        run_id=rec.run.pk, block_id=first.outcome.block_id, secrets=rec.secrets,
    )
