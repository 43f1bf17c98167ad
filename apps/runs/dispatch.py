"""Waking the serving loops. Broker messages are only wake-ups: a lost one costs a pump tick, a
duplicate costs nothing (claims are atomic, and a loop with nothing to do ends).

A serving loop (apps/runs/serving/loop.py) runs inside a `conveyor.runs.serve` task and serves
every active run; loops that are alive poll the database for new work every
SERVE_REFRESH_SECONDS, so new work needs a message only when no loop is alive. Loops register in
Redis with an expiry (`conveyor:servers:<host>`), which is also how a host keeps one process free for
control tasks (SERVE_PROCESSES_PER_HOST). A `serve` task goes to the queue of a host with a free
serving place when one is known (apps/runs/hosts.py), else to the shared `llm` queue; a full host
that is given one hands it on.

Enqueue after commit is the default (`run_dispatch_on_commit`): a worker woken before the commit
would not see the work. The immediate one is named for its hazard and is for code that runs outside
any transaction (the pump, a loop handing over at the end of its slice).
"""

import contextlib
import logging
import os
import time

import redis
from celery import current_app
from django.conf import settings
from django.db import transaction

from apps.core.ids import RunId
from apps.core.redis import broker_redis
from apps.runs.hosts import (
    SERVERS_PREFIX,
    host_name,
    host_of,
    host_queue,
    host_with_free_place,
)

logger = logging.getLogger(__name__)

# Tasks are sent by their names: the task module (apps/runs/tasks.py) imports this one and the whole
# serving loop, never the other way round.
SERVE_TASK = "conveyor.runs.serve"
BATCHES_TASK = "conveyor.runs.batches"
QUEUED_MARKER = "conveyor:serve-queued"
# A `serve` task sent to a host's own queue is dropped if it waited longer than this (the host was
# gone; the pump and the loops ask again), and a full host hands one on at most this many times.
HOST_SERVE_EXPIRES_SECONDS = 30
HAND_ON_HOPS = 2
# Publishing a wake-up gives up quickly when the broker does not answer: the pump sends it again.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
# Atomic "register me if this host has room": purge expired entries, count, add.
REGISTER = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], 600000)
  return 1
end
return 0
"""


def worker_name() -> str:
    return f"{host_name()}:{os.getpid()}"


def run_dispatch_on_commit(*, run_id: RunId) -> None:
    """Make sure the run's work is seen, once the current transaction commits (at once outside one):
    a serving loop for a live run, beat's batch task for a batch-mode run.

    robust: a broker outage must not undo or fail the change that asked for the wake-up; the pump and
    beat find the work in the database and dispatch again."""
    transaction.on_commit(lambda: _wake_for_run(run_id), robust=True)


def _wake_for_run(run_id: RunId) -> None:
    from apps.runs.models import Run, RunMode

    mode = Run.objects.filter(pk=run_id).values_list("effective_mode", flat=True).first()
    if mode == RunMode.BATCH:
        if not current_app.conf.task_always_eager:
            current_app.signature(BATCHES_TASK).delay()
        return
    serve_dispatch_rollback_unsafe(reason=f"run {run_id}")


def serve_dispatch_rollback_unsafe(*, reason: str = "", help_wanted: bool = False) -> bool:
    """Queue a serving loop now, unless one is alive (it will find the work) or one is queued.
    `help_wanted`: a busy loop asks for another (on another process or host) even though it is alive.

    Unsafe inside a transaction that may still roll back (the loop could look before the work is
    committed, find nothing and end): use run_dispatch_on_commit there."""
    if current_app.conf.task_always_eager:
        return False  # no workers to wake (the demo and tests drive a loop in-process)
    try:
        client = broker_redis()
        if not help_wanted and servers_alive(client) > 0:
            return False
        ttl = int(max(10, settings.CONVEYOR["PUMP_INTERVAL_SECONDS"] * 4))
        if not client.set(QUEUED_MARKER, reason or "1", nx=True, ex=ttl):
            return False
    except redis.RedisError:
        logger.warning("redis unavailable; dispatching a serving loop without checking (%s)", reason)
    # Help goes where a place is free; a plain wake-up (no loop alive: every host is free) goes to
    # the shared queue, where any live worker takes it.
    _send_serve(_host_with_free_place() if help_wanted else None, hops=0)
    return True


def serve_hand_over_rollback_unsafe(*, worker: str, reason: str) -> bool:
    """A loop at the end of its slice gives up its serving place, then asks for a loop to take over:
    it only finishes the calls it has started, so the place is free for the next loop at once (on
    this host or another), which starts new calls as these end (the lanes count both loops' calls).
    Holding the place until its calls ended (up to a call's latency, tens of seconds) left the host
    serving nothing new meanwhile: calls in flight fell by two thirds at every hand-over."""
    server_unregister(worker=worker)
    return serve_dispatch_rollback_unsafe(reason=reason, help_wanted=True)


def serve_hand_on_rollback_unsafe(*, worker: str, hops: int) -> str | None:
    """A `serve` task reached a host whose serving places are taken: send it on to a host with a
    free place (not this one), at most HAND_ON_HOPS times. The host it went to, or None (dropped: the
    loops alive serve the work, and the pump wakes one if none is)."""
    if hops >= HAND_ON_HOPS:
        return None
    target = _host_with_free_place(exclude=host_of(worker))
    if target is not None:
        _send_serve(target, hops=hops + 1)
    return target


def _host_with_free_place(*, exclude: str | None = None) -> str | None:
    try:
        return host_with_free_place(exclude=exclude)
    except redis.RedisError:
        return None


def _send_serve(host: str | None, *, hops: int) -> None:
    signature = current_app.signature(SERVE_TASK)
    if host is None:
        signature.apply_async(retry_policy=PUBLISH_RETRY_POLICY)
        return
    signature.apply_async(kwargs={"host": host, "hops": hops}, queue=host_queue(host),
                          expires=HOST_SERVE_EXPIRES_SECONDS, retry_policy=PUBLISH_RETRY_POLICY)


def serve_marker_clear() -> None:
    """A loop took the wake-up: the next one may be queued."""
    with contextlib.suppress(redis.RedisError):
        broker_redis().delete(QUEUED_MARKER)


def servers_alive(client: redis.Redis | None = None) -> int:
    """Serving loops alive on every host."""
    client = client or broker_redis()
    now_ms = time.time() * 1000
    return sum(client.zcount(name, now_ms, "+inf")
               for name in client.scan_iter(match=SERVERS_PREFIX + "*", count=100))


def processes_for_serving() -> int:
    """How many processes of this host's worker may run a serving loop at once: the setting, or by
    default one less than the worker's concurrency (at least one), so a process stays free for the
    control tasks (pump, replay, key validation)."""
    configured = settings.CONVEYOR["SERVE_PROCESSES_PER_HOST"]
    if configured:
        return configured
    concurrency = int(os.environ.get("CONVEYOR_WORKER_CONCURRENCY", "1") or 1)
    return max(1, concurrency - 1)


def server_register(*, worker: str, ttl_seconds: float) -> bool:
    """Claim (or keep) one of this host's serving places until now + ttl; False if the host is full."""
    now_ms = int(time.time() * 1000)
    host = host_of(worker)
    return bool(broker_redis().eval(REGISTER, 1, SERVERS_PREFIX + host, now_ms,
                                    now_ms + int(ttl_seconds * 1000), worker, processes_for_serving()))


def server_unregister(*, worker: str) -> None:
    host = host_of(worker)
    with contextlib.suppress(redis.RedisError):
        broker_redis().zrem(SERVERS_PREFIX + host, worker)
