"""Writing call outcomes: fenced by the lease token, counted on the run in the same transaction.

A worker whose lease was taken over (it was presumed dead and its block handed out again) still
records its Attempt, since the call happened and was billed, but its UPDATE matches no row, so the
block's state and the run's counts are written exactly once, by the lease holder.
"""

import contextlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from apps.failures.models import EventCode, PipelineFailure
from apps.failures.services import diagnostic_log, event_code_for, failure_record
from apps.keys.models import ProviderKey
from apps.providers.errors import FailureKind, ProviderFailure
from apps.providers.usage import TokenUsage
from apps.runs.models import Attempt, AttemptOutcome, Block, BlockStatus, Run, RunStatus
from apps.runs.services.claiming import lock_run
from apps.runs.services.finalize import run_finalize

FAILING_FUNCTION = "conveyor.runs.drain"
# Runs paused with this reason resume by themselves once their key validates again.
KEY_PAUSE_PREFIX = "provider rejected the key"


@dataclass
class Outcome:
    """What one provider call meant for one block."""

    block_id: int
    lease_token: uuid.UUID
    attempt: int
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: Decimal = Decimal(0)
    latency_ms: int | None = None
    request_id: str = ""
    model: str = ""
    output: str | None = None
    failure: ProviderFailure | None = None
    # The request as sent, secrets redacted; kept only on failures.
    payload_snapshot: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecordReport:
    run_status: str
    written: int = 0
    fenced_out: int = 0


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter (half fixed, half random), never sooner than Retry-After."""
    conf = settings.CONVEYOR
    delay = min(conf["RETRY_MAX_SECONDS"], conf["RETRY_BASE_SECONDS"] * 2 ** max(attempt - 1, 0))
    delay = delay / 2 + random.uniform(0, delay / 2)
    return max(delay, retry_after or 0.0)


@dataclass
class _Decision:
    status: str
    attempt_outcome: str
    next_attempt_at: datetime | None = None
    refund_attempt: bool = False
    throttle_wait: bool = False
    error_code: str = ""
    error_message: str = ""


def _decide(outcome: Outcome, block: Block, run: Run, now: datetime) -> _Decision:
    failure = outcome.failure
    if failure is None:
        return _Decision(BlockStatus.SUCCEEDED, AttemptOutcome.SUCCEEDED)
    code, message = failure.code, failure.message
    kind = failure.kind
    if kind == FailureKind.THROTTLED:
        if block.throttle_waits + 1 > settings.CONVEYOR["MAX_THROTTLE_WAITS"]:
            return _Decision(BlockStatus.FAILED, AttemptOutcome.FAILED, error_code="throttle_exhausted",
                             error_message=f"gave up after {block.throttle_waits + 1} throttled calls: "
                                           f"{code}: {message}")
        wait = failure.retry_after or settings.CONVEYOR["THROTTLE_DEFAULT_SECONDS"]
        return _Decision(BlockStatus.PENDING, AttemptOutcome.THROTTLED,
                         next_attempt_at=now + timedelta(seconds=wait), refund_attempt=True,
                         throttle_wait=True, error_code=code, error_message=message)
    if kind in (FailureKind.KEY_INVALID, FailureKind.KEY_BLOCKED):
        # The key's fault, not the block's: the block waits, unharmed, for the key to be fixed.
        return _Decision(BlockStatus.PENDING, AttemptOutcome.KEY_REJECTED, next_attempt_at=now,
                         refund_attempt=True, error_code=code, error_message=message)
    if kind == FailureKind.RETRYABLE and outcome.attempt < run.max_attempts:
        delay = retry_delay(outcome.attempt, failure.retry_after)
        return _Decision(BlockStatus.PENDING, AttemptOutcome.RETRY,
                         next_attempt_at=now + timedelta(seconds=delay),
                         error_code=code, error_message=message)
    if kind == FailureKind.RETRYABLE:
        message = f"gave up after {outcome.attempt} attempts: {message}"
    return _Decision(BlockStatus.FAILED, AttemptOutcome.FAILED, error_code=code, error_message=message)


BLOCK_READ_FIELDS = (
    "id", "run_id", "uid", "block_index", "lease_token", "attempts", "throttle_waits",
    "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
    "cost_usd",
)
BLOCK_WRITE_FIELDS = (
    "status", "lease_token", "lease_expires_at", "next_attempt_at", "error_code", "error_message",
    "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
    "cost_usd", "attempts", "throttle_waits", "finished_at",
)
# Only a success replaces the result and its version stamp; a failure keeps the last good output.
SUCCESS_WRITE_FIELDS = (
    *BLOCK_WRITE_FIELDS, "output", "latency_ms", "model", "pass_number", "pipeline_version",
    "prompt_version",
)


def _apply(block: Block, outcome: Outcome, decision: _Decision, run: Run, now: datetime, *,
           terminal: bool) -> None:
    """Set the block's new state on the locked instance (written by one bulk UPDATE)."""
    block.status = decision.status
    block.lease_token = None
    block.lease_expires_at = None
    block.next_attempt_at = decision.next_attempt_at
    block.error_code = decision.error_code
    block.error_message = decision.error_message
    block.input_tokens += outcome.usage.input_tokens
    block.output_tokens += outcome.usage.output_tokens
    block.cache_creation_input_tokens += outcome.usage.cache_creation_input_tokens
    block.cache_read_input_tokens += outcome.usage.cache_read_input_tokens
    block.cost_usd += outcome.cost_usd
    if decision.refund_attempt:
        block.attempts -= 1
    if decision.throttle_wait:
        block.throttle_waits += 1
    if decision.status == BlockStatus.SUCCEEDED:
        block.output = outcome.output
        block.latency_ms = outcome.latency_ms
        block.model = outcome.model or run.model
        block.pass_number = run.current_pass
        block.pipeline_version = run.pipeline_version
        block.prompt_version = run.prompt_version
    block.finished_at = now if terminal else None


def _write_blocks(blocks: list[Block], fields: tuple[str, ...]) -> None:
    """Write the locked rows back with one parametrised UPDATE run for every row (executemany,
    which psycopg sends as one pipeline).

    This is the hot path of the whole system. Django's bulk_update builds a CASE expression per
    field per row and cost ~5 ms of CPU per block here (measured), which on a worker starves the
    event loop making the provider calls; this costs a few microseconds. Values go through each
    field's own get_db_prep_save, so types are adapted exactly as the ORM would."""
    if not blocks:
        return
    qn = connection.ops.quote_name
    columns = [Block._meta.get_field(name) for name in fields]
    sql = (
        f"UPDATE {qn(Block._meta.db_table)} SET "
        + ", ".join(f"{qn(field.column)} = %s" for field in columns)
        + f" WHERE {qn(Block._meta.pk.column)} = %s"
    )
    params = [
        [field.get_db_prep_save(getattr(block, field.attname), connection) for field in columns]
        + [block.pk]
        for block in blocks
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _attempt_outcome_of(outcome: Outcome) -> str:
    if outcome.failure is None:
        return AttemptOutcome.SUCCEEDED
    return {
        FailureKind.THROTTLED: AttemptOutcome.THROTTLED,
        FailureKind.KEY_INVALID: AttemptOutcome.KEY_REJECTED,
        FailureKind.KEY_BLOCKED: AttemptOutcome.KEY_REJECTED,
        FailureKind.RETRYABLE: AttemptOutcome.RETRY,
    }.get(outcome.failure.kind, AttemptOutcome.FAILED)


def outcomes_record(*, run_id: Any, outcomes: list[Outcome], worker: str = "",
                    secrets: tuple[str, ...] = (), key_revision: int | None = None) -> RecordReport:
    """Record a batch of outcomes of one run in one transaction, then apply key-level effects."""
    key_effects: list[ProviderFailure] = []
    with transaction.atomic():
        report = _record(run_id, outcomes, worker, secrets, key_effects)
    throttles = [o.failure for o in outcomes if o.failure and o.failure.kind == FailureKind.THROTTLED]
    if throttles:
        default = settings.CONVEYOR["THROTTLE_DEFAULT_SECONDS"]
        key_id = Run.objects.filter(pk=run_id).values_list("key_id", flat=True).first()
        if key_id is not None:
            key_throttle(key_id=key_id, seconds=max(f.retry_after or default for f in throttles))
    if key_effects:
        _apply_key_effects(run_id, key_effects, key_revision)
    return report


def _record(run_id: Any, outcomes: list[Outcome], worker: str, secrets: tuple[str, ...],
            key_effects: list[ProviderFailure]) -> RecordReport:
    now = timezone.now()
    run = lock_run(run_id)
    ending = run.status in (RunStatus.CANCELING, RunStatus.CANCELED)
    # The fence: lock the rows that are still claimed under the lease each outcome was given.
    # Rows locked here cannot change under us, so the new values are computed from them and
    # written back by one executemany UPDATE: a constant number of round trips per batch.
    tokens = {o.block_id: o.lease_token for o in outcomes}
    held = {
        b.id: b
        for b in Block.objects.filter(id__in=tokens, status=BlockStatus.CLAIMED)
        .select_for_update(of=("self",))
        .only(*BLOCK_READ_FIELDS)
        if b.lease_token == tokens[b.id]
    }
    report = RecordReport(run_status=run.status)
    counts = {BlockStatus.SUCCEEDED: 0, BlockStatus.FAILED: 0, BlockStatus.CANCELED: 0}
    usage, cost = TokenUsage(), Decimal(0)
    attempts: list[Attempt] = []
    changed: list[Block] = []
    newly_failed: list[tuple[Outcome, _Decision, Block]] = []
    pause_reason = ""
    succeeded_ids: list[int] = []
    for outcome in outcomes:
        block = held.pop(outcome.block_id, None)  # pop: a block answers once per batch
        matched = block is not None
        if block is None:
            # Fenced out: the lease was taken over. Record what the call was, change nothing.
            report.fenced_out += 1
            failure = outcome.failure
            decision = _Decision(BlockStatus.CLAIMED, _attempt_outcome_of(outcome),
                                 error_code=failure.code if failure else "",
                                 error_message=failure.message if failure else "")
        else:
            decision = _decide(outcome, block, run, now)
            if decision.status == BlockStatus.PENDING and ending:
                decision.status = BlockStatus.CANCELED
            _apply(block, outcome, decision, run, now, terminal=decision.status in counts)
            changed.append(block)
            report.written += 1
            if decision.status in counts:
                counts[decision.status] += 1
            if decision.status == BlockStatus.FAILED:
                newly_failed.append((outcome, decision, block))
            elif decision.attempt_outcome in (AttemptOutcome.RETRY, AttemptOutcome.THROTTLED):
                diagnostic_log(
                    function_name=FAILING_FUNCTION, event_code=EventCode.PIPELINE_RETRY,
                    message=f"{decision.error_code}: {decision.error_message}",
                    metadata={"attempt": outcome.attempt, "outcome": decision.attempt_outcome,
                              "http_status": outcome.failure.http_status if outcome.failure else None},
                    run_id=run.pk, block_id=block.pk, secrets=secrets,
                )
            if decision.attempt_outcome == AttemptOutcome.KEY_REJECTED and outcome.failure:
                key_effects.append(outcome.failure)
                pause_reason = f"{KEY_PAUSE_PREFIX}: {decision.error_code}: {decision.error_message}"
        usage += outcome.usage
        cost += outcome.cost_usd
        failure = outcome.failure
        attempts.append(Attempt(
            run_id=run.pk, block_id=outcome.block_id, number=outcome.attempt,
            pass_number=run.current_pass, outcome=decision.attempt_outcome, accepted=bool(matched),
            http_status=failure.http_status if failure else 200,
            error_code=decision.error_code, error_message=decision.error_message,
            request_id=(failure.request_id if failure else outcome.request_id)[:100],
            latency_ms=outcome.latency_ms, model=outcome.model or run.model, worker=worker[:200],
            input_tokens=outcome.usage.input_tokens, output_tokens=outcome.usage.output_tokens,
            cache_creation_input_tokens=outcome.usage.cache_creation_input_tokens,
            cache_read_input_tokens=outcome.usage.cache_read_input_tokens,
            cost_usd=outcome.cost_usd,
            output=outcome.output if matched and decision.status == BlockStatus.SUCCEEDED else None,
        ))
        if matched and decision.status == BlockStatus.SUCCEEDED:
            succeeded_ids.append(outcome.block_id)
    succeeded = [b for b in changed if b.status == BlockStatus.SUCCEEDED]
    others = [b for b in changed if b.status != BlockStatus.SUCCEEDED]
    _write_blocks(succeeded, SUCCESS_WRITE_FIELDS)
    _write_blocks(others, BLOCK_WRITE_FIELDS)
    Attempt.objects.bulk_create(attempts)
    if succeeded_ids:
        # A dead-lettered block that succeeds (after a replay or reseed) resolves its failure row.
        PipelineFailure.objects.filter(block_id__in=succeeded_ids, resolved_at__isnull=True).update(
            resolved_at=now, next_retry_at=None,
            resolution_note=f"block succeeded on pass {run.current_pass}",
        )
    # Every call is on the invoice, accepted or not: run usage is the sum of its attempts.
    run_changes: dict[str, Any] = {
        "completed_blocks": F("completed_blocks") + counts[BlockStatus.SUCCEEDED],
        "failed_blocks": F("failed_blocks") + counts[BlockStatus.FAILED],
        "canceled_blocks": F("canceled_blocks") + counts[BlockStatus.CANCELED],
        "input_tokens": F("input_tokens") + usage.input_tokens,
        "output_tokens": F("output_tokens") + usage.output_tokens,
        "cache_creation_input_tokens": F("cache_creation_input_tokens")
        + usage.cache_creation_input_tokens,
        "cache_read_input_tokens": F("cache_read_input_tokens") + usage.cache_read_input_tokens,
        "cost_usd": F("cost_usd") + cost,
    }
    budget = run.options.get("max_cost_usd")
    if pause_reason and run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        run_changes.update(status=RunStatus.PAUSED, paused_reason=pause_reason[:1000])
        report.run_status = RunStatus.PAUSED
    elif budget is not None and run.status == RunStatus.RUNNING and (
        run.cost_usd + cost >= Decimal(str(budget))
    ):
        run_changes.update(status=RunStatus.PAUSED,
                           paused_reason=f"budget of ${budget} spent (cost ${run.cost_usd + cost})")
        report.run_status = RunStatus.PAUSED
    Run.objects.filter(pk=run.pk).update(**run_changes)
    for outcome, decision, block in newly_failed:
        failure = outcome.failure
        failure_record(
            run_id=run.pk, block_id=block.pk, failing_function=FAILING_FUNCTION,
            caller_function="conveyor.runs.services.drain", error_code=decision.error_code,
            error_message=decision.error_message,
            http_status=failure.http_status if failure else None,
            attempt_count=outcome.attempt, payload_snapshot=outcome.payload_snapshot,
            context={"uid": block.uid, "block_index": block.block_index, "model": run.model,
                     "request_id": failure.request_id if failure else "",
                     "partial_text": (failure.partial_text[:2000] if failure else ""),
                     "pass": run.current_pass},
            event_code=event_code_for(decision.error_code, failure.http_status if failure else None),
            secrets=secrets,
        )
    ended = run_finalize(run_id=run.pk)
    if ended:
        report.run_status = ended
    return report


def _apply_key_effects(run_id: Any, failures: list[ProviderFailure], key_revision: int | None
                       ) -> None:
    """After the run's transaction: a rejected key is marked invalid and every run on it pauses.

    If the key was changed since this drain read it (its owner fixed it while the call was in
    flight), the rejection is about the old secret: the run that paused on it resumes instead."""
    from apps.keys.services import key_mark_invalid
    from apps.runs.services.lifecycle import RunStateError, run_resume, runs_pause_for_key

    key_id = Run.objects.filter(pk=run_id).values_list("key_id", flat=True).first()
    if key_id is None:
        return
    failure = failures[0]
    reason = f"{KEY_PAUSE_PREFIX}: {failure.code}: {failure.message}"
    if any(f.kind == FailureKind.KEY_INVALID for f in failures) and not key_mark_invalid(
        key_id=key_id, error=f"{failure.code}: {failure.message}", revision=key_revision
    ):
        with contextlib.suppress(RunStateError):
            run_resume(run_id=run_id)
        return
    runs_pause_for_key(key_id=key_id, reason=reason)


def key_throttle(*, key_id: int, seconds: float) -> None:
    """Make every worker wait before calling with this key (429/529 Retry-After)."""
    until = timezone.now() + timedelta(seconds=seconds)
    ProviderKey.objects.filter(pk=key_id).update(
        throttled_until=Greatest(Coalesce("throttled_until", until), until)
    )
