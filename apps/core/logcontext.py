"""What a log line is about: the run, block, attempt, correlation id, key and event code of the work
in progress, carried in a context variable and copied onto every record by a filter on the handler.

Context variables are per asyncio task (a task copies its creator's context when it is created), so
the serving loop's calls, each in its own task, each log with their own run and block, and the
database thread of `sync_to_async` sees the context of the coroutine that called it.

    with log_context(run_id=run.pk, key_id=key.pk, secrets=(api_key,)):
        logger.info("...")   # carries run_id and key_id; the secret is never written

`secrets` are not fields: they are what `LogContextFilter` redacts from every record written
inside the block (apps.core.redaction, with its patterns for secrets nobody told us about).
"""

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from apps.core.ids import RunId
from apps.core.redaction import redact, redact_text

# The fields a record carries when they are known, in the order a plain line shows them.
FIELDS = ("run_id", "block_uid", "attempt", "correlation_id", "key_id", "event_code")

# Never mutated: each log_context sets a new mapping (and resets to the old one after).
_fields: ContextVar[Mapping[str, Any]] = ContextVar("conveyor_log_fields", default=MappingProxyType({}))
_secrets: ContextVar[tuple[str, ...]] = ContextVar("conveyor_log_secrets", default=())

# Every attribute a bare LogRecord has; anything else on a record came from `extra=` or a filter.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


@contextmanager
def log_context(*, secrets: tuple[str, ...] = (), **fields: Any) -> Iterator[None]:
    """Add fields (None values are left out) and secrets to the context for the block's duration;
    nested blocks add to what the outer one set."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown log context field(s): {', '.join(sorted(unknown))}")
    values = {name: _plain(value) for name, value in fields.items() if value is not None}
    field_token = _fields.set({**_fields.get(), **values})
    secret_token = _secrets.set(_secrets.get() + tuple(s for s in secrets if s))
    try:
        yield
    finally:
        _fields.reset(field_token)
        _secrets.reset(secret_token)


def current_fields() -> dict[str, Any]:
    return dict(_fields.get())


def correlation_id(*, run_id: RunId, block_uid: str, attempt: int) -> str:
    """The id sent to the provider with a call (`x-conveyor-correlation-id`) and logged with it:
    the run, the first block of the call and its attempt."""
    return f"{run_id}:{block_uid}:{attempt}"


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | str) else str(value)


class LogContextFilter(logging.Filter):
    """On the handler: copy the context onto the record (a field given with `extra=` wins), and
    redact secrets from its message, its extra fields and its traceback, so that no formatter can
    write one. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _fields.get().items():
            if name not in record.__dict__:
                setattr(record, name, value)
        secrets = _secrets.get()
        message = record.getMessage()
        clean = redact_text(message, secrets)
        if clean != message:
            record.msg, record.args = clean, None
        for name, value in list(record.__dict__.items()):
            if name not in _RECORD_ATTRS and not isinstance(value, int | float | bool | type(None)):
                setattr(record, name, redact(value, secrets))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            # Formatters write exc_text when there is no exc_info to format again from.
            record.exc_text, record.exc_info = redact_text(record.exc_text, secrets), None
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, secrets)
        return True


class PlainFormatter(logging.Formatter):
    """The human-readable line, with the context fields the record has appended as name=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{name}={record.__dict__[name]}" for name in FIELDS if name in record.__dict__)
        if not fields:
            return line
        first, sep, rest = line.partition("\n")  # after the message, before a traceback
        return f"{first} {fields}{sep}{rest}"


# Periodic tasks that beat sends every few seconds. Celery announces each one at INFO (beat: "Sending
# due task"; the worker: "received", "succeeded", and "Discarding revoked task" for one that expired
# while the worker was busy); the tasks log for themselves when they did something, so those
# announcements are dropped. Warnings and errors always pass.
ROUTINE_TASKS = frozenset({"conveyor.runs.pump", "conveyor.failures.replay_due", "conveyor.runs.batches"})
# The loggers that announce tasks, and where their records name the task: in `data` (celery's
# tracer and strategy pass the task's details there), or the position in the message's arguments.
_ANNOUNCERS: dict[str, int | None] = {
    "celery.app.trace": None, "celery.worker.strategy": None,
    "celery.beat": 1,  # "Scheduler: Sending due task %s (%s)": entry name, task name
    "celery.worker.request": 0,  # "Discarding revoked task: %s[%s]": task name, id
}


class RoutineTaskFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or record.name not in _ANNOUNCERS:
            return True
        return _task_name(record) not in ROUTINE_TASKS


def _task_name(record: logging.LogRecord) -> str | None:
    data = getattr(record, "data", None)
    if isinstance(data, dict):
        return data.get("name")
    position = _ANNOUNCERS[record.name]
    if position is not None and isinstance(record.args, tuple) and len(record.args) > position:
        return str(record.args[position])
    return None
