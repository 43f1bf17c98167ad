"""Readiness checks: can this deployment do its work right now?

Each check returns a `Check` (ok, and what failed in words an operator can act on). A check never
raises and never waits long: the database connection gives up after DATABASE_CONNECT_TIMEOUT, Redis
after READY_CHECK_TIMEOUT_SECONDS. What a check says never holds a secret: exception text goes
through the redaction helper with the configured passwords, and addresses are shown as host:port only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apps.core.redaction import redact_text
from apps.health.heartbeats import PUMP, heartbeat_last

logger = logging.getLogger(__name__)

# Unapplied migrations named in the answer; the rest are counted.
MAX_MIGRATIONS_NAMED = 5


@dataclass(frozen=True)
class Check:
    ok: bool
    error: str = ""
    details: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        body = {"status": "ok" if self.ok else "failing", **self.details}
        if self.error:
            body["error"] = self.error
        return body


def _passwords() -> list[str]:
    """Every password the checks could meet in an error message (a driver that echoes its DSN)."""
    found = [str(settings.DATABASES["default"].get("PASSWORD") or "")]
    found.append(urlsplit(settings.CELERY_BROKER_URL).password or "")
    return [password for password in found if password]


def _failure(what: str, exc: BaseException) -> Check:
    """The check failed with `exc`: logged in full (redacted), answered as class and message."""
    message = redact_text(f"{type(exc).__name__}: {exc}".strip(), _passwords())
    logger.warning("readiness: %s failed: %s", what, message)
    return Check(ok=False, error=message[:300])


def check_database() -> Check:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        # A half-open connection must not be reused by the next request of this process.
        connection.close_if_unusable_or_obsolete()
        return _failure("database", exc)
    return Check(ok=True)


def check_migrations() -> Check:
    """Every migration the code knows is applied (what `migrate` would do is nothing)."""
    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        return _failure("migrations", exc)
    if not plan:
        return Check(ok=True)
    names = [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]
    shown = ", ".join(names[:MAX_MIGRATIONS_NAMED])
    more = f" and {len(names) - MAX_MIGRATIONS_NAMED} more" if len(names) > MAX_MIGRATIONS_NAMED else ""
    return Check(ok=False, error=f"{len(names)} unapplied: {shown}{more} (run manage.py migrate)",
                 details={"unapplied": len(names)})


def check_redis() -> Check:
    """The broker answers PING: workers can be woken and beat can send."""
    url = settings.CELERY_BROKER_URL
    timeout = settings.CONVEYOR["READY_CHECK_TIMEOUT_SECONDS"]
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 6379}"
    try:
        client.ping()
    except redis.RedisError as exc:
        failed = _failure("redis", exc)
        return Check(ok=False, error=f"{where}: {failed.error}")
    finally:
        client.close()
    return Check(ok=True)


def check_beat(*, max_age: float | None = None) -> Check:
    """The pump ran to its end within `max_age` seconds (default READY_BEAT_MAX_AGE_SECONDS): beat
    sends it and a worker of the control queue runs it."""
    limit = settings.CONVEYOR["READY_BEAT_MAX_AGE_SECONDS"] if max_age is None else max_age
    try:
        last = heartbeat_last(PUMP)
    except DatabaseError as exc:
        return _failure("beat", exc)
    if last is None:
        return Check(ok=False, error="the pump has never run (is beat running, and a worker on the "
                                     "control queue?)")
    age = (timezone.now() - last).total_seconds()
    details = {"pump_age_seconds": round(age, 1), "max_age_seconds": limit}
    if age > limit:
        return Check(ok=False, details=details,
                     error=f"the pump last ran {age:.0f} s ago, more than {limit:.0f} s (is beat "
                           f"running, and a worker on the control queue?)")
    return Check(ok=True, details=details)


CHECKS: dict[str, Callable[[], Check]] = {
    "database": check_database,
    "migrations": check_migrations,
    "redis": check_redis,
    "beat": check_beat,
}
# These read the database: when it does not answer, they say so instead of waiting for it again.
NEEDS_DATABASE = {"migrations", "beat"}


def readiness() -> tuple[bool, dict]:
    """Run every check; (all ok, {name: its answer with how long it took})."""
    results: dict[str, dict] = {}
    database_ok = True
    for name, check in CHECKS.items():
        started = time.monotonic()
        if name in NEEDS_DATABASE and not database_ok:
            result = Check(ok=False, error="skipped: the database does not answer")
        else:
            result = check()
        if name == "database":
            database_ok = result.ok
        results[name] = {**result.as_json(), "ms": round((time.monotonic() - started) * 1000, 1)}
    return all(result["status"] == "ok" for result in results.values()), results

