"""Waking a worker for a run. Broker messages are only wake-ups: a lost one costs a pump tick, a
duplicate costs nothing (claims are atomic).

Enqueue after commit is the default (`run_dispatch_on_commit`): a worker woken before the commit
would not see the work. The immediate one is named for its hazard and is for code that runs outside
any transaction (the pump, a drain handing its run back).
"""

import contextlib
import logging
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


@cache
def _redis_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def broker_redis() -> redis.Redis:
    return _redis_for(settings.CELERY_BROKER_URL)


def _marker(run_id: Any) -> str:
    return f"conveyor:drain-queued:{run_id}"


def run_dispatch_on_commit(*, run_id: Any) -> None:
    """Wake a worker for this run once the current transaction commits (at once outside one).

    robust: a broker outage must not undo or fail the change that asked for the wake-up; the pump
    finds the work in the database and dispatches it again."""
    transaction.on_commit(lambda: run_dispatch_rollback_unsafe(run_id=run_id), robust=True)


def run_dispatch_rollback_unsafe(*, run_id: Any) -> bool:
    """Wake a worker for this run now, unless a wake-up is already queued. Unsafe inside a
    transaction that may still roll back (the worker could act on work that never existed, or not
    see it yet): use run_dispatch_on_commit there.

    The marker only saves redundant messages: if it or the message is lost (Redis flushed), the
    pump dispatches again, and a duplicate drain is harmless because claims are atomic."""
    from apps.runs.tasks import drain

    conf = settings.CONVEYOR
    if not drain.app.conf.task_always_eager:
        ttl = int(max(conf["DRAIN_SLICE_SECONDS"], conf["PUMP_INTERVAL_SECONDS"] * 4))
        try:
            if not broker_redis().set(_marker(run_id), "1", nx=True, ex=ttl):
                return False
        except redis.RedisError:
            logger.warning("redis unavailable; dispatching drain for run %s without marker", run_id)
    drain.delay(str(run_id))
    return True


def run_dispatch_marker_clear(*, run_id: Any) -> None:
    """A drain took the wake-up: the next one may be queued."""
    with contextlib.suppress(redis.RedisError):
        broker_redis().delete(_marker(run_id))
