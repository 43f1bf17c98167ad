"""Recording what went wrong: the dead-letter table and the diagnostic log.

Both writes are best-effort: they run in a savepoint and a database error there is logged, never
raised, so that recording a failure can never undo the block's own state change (nothing is lost
silently either way: the block row itself says `failed` with its error code).
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from apps.core.errors import InvalidInput, StateConflict
from apps.core.ids import RunId
from apps.core.logcontext import log_context
from apps.core.redaction import redact
from apps.failures.models import DiagnosticLog, EventCode, LogLevel, PipelineFailure

logger = logging.getLogger(__name__)


class FailureStateError(StateConflict):
    """The failure is not in a state that allows this operation (already resolved, nothing to replay)."""

# Errors that no replay can fix without a change to the run (reseed instead): parked at once.
NOT_REPLAYABLE_CODES = frozenset({
    "invalid_request_error", "not_found_error", "request_too_large", "refusal",
    "model_context_window_exceeded", "input_invalid",
})


def replay_due_at(*, error_code: str, replay_count: int, now: datetime | None = None
                  ) -> datetime | None:
    """When the replay task should next put this failure back to work; None parks it."""
    conf = settings.CONVEYOR
    if error_code in NOT_REPLAYABLE_CODES or replay_count >= conf["FAILURE_MAX_REPLAYS"]:
        return None
    delay = conf["FAILURE_REPLAY_BASE_SECONDS"] * (2**replay_count)
    return (now or timezone.now()) + timedelta(seconds=delay)


def diagnostic_log(*, function_name: str, event_code: EventCode, message: str,
                   level: LogLevel = LogLevel.WARNING, metadata: dict[str, Any] | None = None,
                   run_id: RunId | None = None, block_id: int | None = None,
                   secrets: tuple[str, ...] = (), exc_info: BaseException | None = None) -> None:
    """A diagnostic_logs row, and the same event as a log line carrying its event code (and the
    run, block and call of the current log context). The row is best-effort (the database may be
    what failed); the line is always written."""
    message = redact(message, secrets)
    with log_context(run_id=run_id, event_code=str(event_code), secrets=secrets):
        logger.log(logging.getLevelName(str(level)), "%s: %s", function_name, message,
                   exc_info=exc_info)
        try:
            with transaction.atomic():
                DiagnosticLog.objects.create(
                    function_name=function_name,
                    function_version=settings.CONVEYOR["PIPELINE_VERSION"],
                    log_level=level,
                    event_code=event_code,
                    message=message,
                    metadata=redact(metadata or {}, secrets),
                    run_id=run_id,
                    block_id=block_id,
                )
        except DatabaseError:
            logger.exception("could not write diagnostic log %s for block %s", event_code, block_id)


def failure_record(*, run_id: RunId, block_id: int, failing_function: str, caller_function: str,
                   error_code: str, error_message: str, http_status: int | None,
                   attempt_count: int, payload_snapshot: dict[str, Any], context: dict[str, Any],
                   event_code: EventCode, secrets: tuple[str, ...] = ()) -> None:
    """Dead-letter a block that failed for good: one unresolved row per block (a block failing
    again after a replay updates its row), plus a diagnostic entry."""
    now = timezone.now()
    error_message = redact(error_message, secrets)
    fields = {
        "run_id": run_id,
        "failing_function": failing_function,
        "caller_function": caller_function,
        "http_status": http_status,
        "error_code": error_code,
        "error_message": error_message,
        "payload_snapshot": redact(payload_snapshot, secrets),
        "context": redact(context, secrets),
        "failed_at": now,
    }
    try:
        with transaction.atomic():
            row = (
                PipelineFailure.objects.select_for_update()
                .filter(block_id=block_id, resolved_at__isnull=True)
                .first()
            )
            if row is None:
                row = PipelineFailure(block_id=block_id, attempt_count=0, **fields)
            else:
                for name, value in fields.items():
                    setattr(row, name, value)
            # Accumulated over replays: every attempt the block has had, never overwritten.
            row.attempt_count += attempt_count
            row.next_retry_at = replay_due_at(
                error_code=error_code, replay_count=row.replay_count, now=now
            )
            row.save()
    except DatabaseError:
        logger.exception("could not dead-letter block %s (%s)", block_id, error_code)
    diagnostic_log(
        function_name=failing_function,
        event_code=event_code,
        level=LogLevel.ERROR,
        message=f"{error_code}: {error_message}",
        metadata={"http_status": http_status, "attempts": attempt_count, **context},
        run_id=run_id,
        block_id=block_id,
        secrets=secrets,
    )


def event_code_for(error_code: str, http_status: int | None) -> EventCode:
    """The taxonomy code for a block's terminal error."""
    if http_status in (401, 403) or error_code in ("authentication_error", "permission_error"):
        return EventCode.AUTH_FAILED
    if error_code in ("unparseable_output", "mismapped_output", "max_tokens", "output_invalid"):
        return EventCode.MODEL_PARSE_ERROR
    if error_code in ("invalid_request_error", "request_too_large", "input_invalid"):
        return EventCode.INPUT_INVALID
    return EventCode.DOWNSTREAM_CALL_FAILED


def failure_resolve(*, failure_id: int, note: str) -> PipelineFailure:
    """Close a dead-letter row by hand, with a note saying why; it is never replayed again. The block
    stays as it is (reseed the run to run it again)."""
    note = (note or "").strip()
    if not note:
        raise InvalidInput("a note is required to resolve a failure", field="note")
    with transaction.atomic():
        row = PipelineFailure.objects.select_for_update().get(pk=failure_id)
        if row.resolved_at is not None:
            raise FailureStateError(f"failure {row.pk} is already resolved")
        row.resolved_at = timezone.now()
        row.next_retry_at = None
        row.resolution_note = note
        row.save(update_fields=["resolved_at", "next_retry_at", "resolution_note"])
    return row
