"""What a finished call does to its block: pure decisions, no database.

An `Outcome` is what one provider call (live, or one line of a Message Batch) meant for one block;
`decide` turns it into a `Decision` by the failure's class (apps.providers.errors classifies, once):
where the block goes, when it is due again (`retry_delay`, `overload_delay`), whether the attempt is
given back, and what its Attempt row says. A split's call the budget could not reserve for
(`Outcome.budget_wait`) is a BUDGET_WAIT: back to pending, attempt given back. A key-level failure
pauses the key's runs for the cause in `KEY_PAUSE_CAUSES` and is logged under `KEY_EVENT_CODES`.
apps.runs.services.outcomes records the decisions; apps.runs.transitions writes them onto the blocks.
"""

import random
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings

from apps.core.formatting import counted
from apps.failures.models import EventCode
from apps.providers.errors import FailureKind, ProviderFailure, about_the_model
from apps.providers.usage import TokenUsage
from apps.runs.models import AttemptOutcome, Block, BlockStatus, PausedCause, Run
from apps.runs.transitions import RUN_ENDING

# A key the provider refuses, will not let spend, or whose base_url broke the address rules at call
# time: the block is not at fault; the key's runs pause for this cause.
KEY_PAUSE_CAUSES = {FailureKind.KEY_INVALID: PausedCause.KEY_REJECTED,
                    FailureKind.KEY_BLOCKED: PausedCause.KEY_BLOCKED,
                    FailureKind.KEY_UNSAFE: PausedCause.KEY_UNSAFE}

# A key the provider refuses (401/403) or will not let spend (402) is an authentication failure; a
# key whose base_url broke the address rules at call time never reached the provider.
KEY_EVENT_CODES = {FailureKind.KEY_INVALID: EventCode.AUTH_FAILED,
                   FailureKind.KEY_BLOCKED: EventCode.AUTH_FAILED,
                   FailureKind.KEY_UNSAFE: EventCode.DOWNSTREAM_CALL_FAILED}


@dataclass
class Outcome:
    """What one provider call meant for one block."""

    block_id: int
    lease_token: uuid.UUID
    attempt: int
    # The call's number in the pass (0: not known, the attempt count stands in).
    number: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: Decimal = Decimal(0)
    latency_ms: int | None = None
    request_id: str = ""
    model: str = ""
    output: str | None = None
    # A structured run's answer as its document (validated against the run's schema).
    output_json: Any = None
    failure: ProviderFailure | None = None
    # The request as sent, secrets redacted; kept only on failures.
    payload_snapshot: dict[str, Any] = field(default_factory=dict)
    # When the call went out.
    started_at: datetime | None = None
    # The Message Batch that answered it (its cost is already at batch prices).
    batch_id: int | None = None
    # The x-conveyor-correlation-id the call was sent with ("" for a batch request), for the logs.
    correlation_id: str = ""
    # A split's call that was never made: the run's budget could not hold its worst case
    # (apps.runs.services.budget); `usage` is what the calls above it spent.
    budget_wait: bool = False
    # The key the call was made with (a run may have a pool of keys) and its revision when read;
    # None: the run's key (a Message Batch, an outcome made without a call).
    key_id: int | None = None
    key_revision: int | None = None


@dataclass(frozen=True)
class Decision:
    """Where one outcome takes its block, and what its Attempt row says."""

    status: str
    attempt_outcome: str
    next_attempt_at: datetime | None = None
    refund_attempt: bool = False
    throttle_wait: bool = False
    error_code: str = ""
    error_message: str = ""
    # The block moves on to this of the run's models (Run.models) with its attempts afresh.
    model_index: int | None = None
    # Its call came back overloaded: the block's overloaded_since starts (or goes on).
    overloaded: bool = False


@dataclass
class Entry:
    """One outcome on its way into the database, with its decision."""

    outcome: Outcome
    decision: Decision
    # The locked block this outcome writes; None when the fence left it out.
    block: Block | None = None


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter (half fixed, half random), never sooner than Retry-After."""
    conf = settings.CONVEYOR
    delay: float = min(conf["RETRY_MAX_SECONDS"], conf["RETRY_BASE_SECONDS"] * 2 ** max(attempt - 1, 0))
    delay = delay / 2 + random.uniform(0, delay / 2)
    return max(delay, retry_after or 0.0)


def overload_delay(waits: int, retry_after: float | None = None) -> float:
    """An overloaded call's back-off: short, growing with the block's own overloads, jittered so
    that calls refused together do not come back together."""
    conf = settings.CONVEYOR
    delay: float = min(conf["OVERLOAD_BACKOFF_MAX_SECONDS"],
                conf["OVERLOAD_BACKOFF_BASE_SECONDS"] * 2 ** min(waits, 6))
    delay = delay / 2 + random.uniform(0, delay / 2)
    return max(delay, retry_after or 0.0)


BUDGET_WAIT = Decision(BlockStatus.PENDING, AttemptOutcome.BUDGET_WAIT, refund_attempt=True,
                       error_code="budget_wait",
                       error_message="not called: the run's budget cannot hold the worst case of this "
                                     "split's call until calls in flight settle or the budget is raised")


def decide(outcome: Outcome, block: Block, run: Run, now: datetime) -> Decision:
    """The next state of a block that one call answered for, by the failure's class. In a run being
    canceled, a block that would go back to work is canceled instead."""
    if outcome.budget_wait:
        # Not the block's fault: no attempt used; due again at once, the next claim reserves for it
        # (and pauses the run by its budget when nothing it could pay for is left).
        decision = replace(BUDGET_WAIT, next_attempt_at=now)
    else:
        decision = _by_failure_class(outcome, block, run, now)
    if decision.status == BlockStatus.PENDING and run.status in RUN_ENDING:
        return replace(decision, status=BlockStatus.CANCELED)
    return decision


# How long a block's calls on one model may come back overloaded before it moves to the next model
# (a run's options.fallback_overload_seconds, when it has fallback models).
FALLBACK_OVERLOAD_SECONDS = 300.0


def fallback(outcome: Outcome, block: Block, run: Run, now: datetime) -> Decision | None:
    """The block moves to the run's next model when the one it is on cannot serve it: the model is
    not found or not permitted; it has been overloaded for longer than the run allows; or (opt-in,
    options.fallback_on_invalid_output) its answers failed the run's checks on every attempt. Never
    past the models the run lists, and in batch mode only when the run says so
    (options.fallback_in_batch; else batches use the primary model)."""
    failure = outcome.failure
    models = run.models
    options = run.options or {}
    in_batch = outcome.batch_id is not None
    if (failure is None or (in_batch and not options.get("fallback_in_batch"))
            or block.model_index + 1 >= len(models)):
        return None
    moving = about_the_model(failure)
    if failure.kind == FailureKind.OVERLOADED:
        limit = float(options.get("fallback_overload_seconds") or FALLBACK_OVERLOAD_SECONDS)
        moving = (block.overloaded_since is not None
                  and (now - block.overloaded_since).total_seconds() >= limit)
        # Out of overload waits on this model before the time is up: the next model, not a failure.
        moving = moving or block.throttle_waits + 1 > settings.CONVEYOR["MAX_THROTTLE_WAITS"]
    if (failure.kind == FailureKind.OUTPUT_INVALID and options.get("fallback_on_invalid_output")
            and outcome.attempt >= run.max_attempts):
        moving = True
    if not moving:
        return None
    current, following = models[block.model_index], models[block.model_index + 1]
    return Decision(BlockStatus.PENDING, AttemptOutcome.RETRY, next_attempt_at=now,
                    model_index=block.model_index + 1, error_code=failure.code,
                    error_message=f"{current} could not serve it ({failure.code}: {failure.message}); "
                                  f"moved to {following}")


def _by_failure_class(outcome: Outcome, block: Block, run: Run, now: datetime) -> Decision:
    failure = outcome.failure
    if failure is None:
        return Decision(BlockStatus.SUCCEEDED, AttemptOutcome.SUCCEEDED)
    moved = fallback(outcome, block, run, now)
    if moved is not None:
        return moved
    code, message = failure.code, failure.message
    kind = failure.kind
    if kind in (FailureKind.THROTTLED, FailureKind.OVERLOADED):
        # Rationed or overloaded: not the block's fault, so no attempt is used; a separate bound
        # stops a block that could never get through.
        if block.throttle_waits + 1 > settings.CONVEYOR["MAX_THROTTLE_WAITS"]:
            calls = counted(block.throttle_waits + 1, "throttled call")
            return Decision(BlockStatus.FAILED, AttemptOutcome.FAILED, error_code="throttle_exhausted",
                            error_message=f"gave up after {calls}: {code}: {message}")
        if kind == FailureKind.THROTTLED:
            # The lane holds every call until Retry-After; the block is due again then.
            wait = (failure.retry_after if failure.retry_after is not None
                    else settings.CONVEYOR["THROTTLE_DEFAULT_SECONDS"])
        else:
            wait = overload_delay(block.throttle_waits, failure.retry_after)
        return Decision(BlockStatus.PENDING, AttemptOutcome.THROTTLED,
                        next_attempt_at=now + timedelta(seconds=wait), refund_attempt=True,
                        throttle_wait=True, error_code=code, error_message=message,
                        overloaded=kind == FailureKind.OVERLOADED)
    if kind in KEY_PAUSE_CAUSES:
        # The key's fault, not the block's: the block waits, unharmed, for the key to be fixed.
        return Decision(BlockStatus.PENDING, AttemptOutcome.KEY_REJECTED, next_attempt_at=now,
                        refund_attempt=True, error_code=code, error_message=message)
    # An answer that is no document of the run's schema is retried like a transient error: the model
    # may well answer properly next time.
    retried = kind in (FailureKind.RETRYABLE, FailureKind.OUTPUT_INVALID)
    if retried and outcome.attempt < run.max_attempts:
        delay = retry_delay(outcome.attempt, failure.retry_after)
        return Decision(BlockStatus.PENDING, AttemptOutcome.RETRY,
                        next_attempt_at=now + timedelta(seconds=delay),
                        error_code=code, error_message=message)
    if retried:
        message = f"gave up after {counted(outcome.attempt, 'attempt')}: {message}"
    return Decision(BlockStatus.FAILED, AttemptOutcome.FAILED, error_code=code, error_message=message)


def fenced_out(outcome: Outcome) -> Decision:
    """A call whose lease was taken over: its Attempt says what the call was; nothing else moves."""
    failure = outcome.failure
    if outcome.budget_wait:
        attempt_outcome = AttemptOutcome.BUDGET_WAIT
    elif failure is None:
        attempt_outcome = AttemptOutcome.SUCCEEDED
    elif failure.kind in (FailureKind.THROTTLED, FailureKind.OVERLOADED):
        attempt_outcome = AttemptOutcome.THROTTLED
    elif failure.kind in KEY_PAUSE_CAUSES:
        attempt_outcome = AttemptOutcome.KEY_REJECTED
    elif failure.kind in (FailureKind.RETRYABLE, FailureKind.OUTPUT_INVALID):
        attempt_outcome = AttemptOutcome.RETRY
    else:
        attempt_outcome = AttemptOutcome.FAILED
    return Decision(BlockStatus.CLAIMED, attempt_outcome, error_code=failure.code if failure else "",
                    error_message=failure.message if failure else "")
