"""Worker hosts: each host's name, its own queue, and the serving places it has free.

A serving loop that asks for help (or hands over at the end of its slice) wants its `serve` task to
reach a host that can run it. The shared `llm` queue cannot promise that: a spare process of a full
host takes the task and has to drop it while another host sits idle. So:
- every worker that consumes `llm` also consumes its host's own queue, `llm.<host>`
  (config/celery_app.py adds it at worker start);
- every such worker says, every ADVERTISE_SECONDS, how many serving places its host has
  (`conveyor:hosts`, an entry that expires unless renewed: a host that is gone stops being chosen
  within seconds);
- whoever sends a `serve` task picks the host with the most places free (its places, less the loops
  registered there, less the help already sent there and not yet arrived) and sends it to that host's
  queue; none known free: the shared queue, as before.
The host's name is CONVEYOR_HOSTNAME, else the machine's hostname (two hosts sharing a hostname,
containers or network namespaces, must set it)."""

import contextlib
import logging
import os
import socket
import threading
import time

import redis

from apps.core.redis import broker_redis

logger = logging.getLogger(__name__)

SERVE_QUEUE = "llm"
# Serving loops registered on a host (a sorted set per host: worker -> registration expiry, ms).
SERVERS_PREFIX = "conveyor:servers:"
# Hosts that consume `llm` (host -> advertisement expiry, ms) and their serving places (host -> n).
HOSTS_KEY = "conveyor:hosts"
PLACES_KEY = "conveyor:hosts:places"
# Help sent to a host and not yet arrived there (a count that expires on its own).
EXPECTED_PREFIX = "conveyor:hosts:expected:"
ADVERTISE_SECONDS = 2.0
ADVERTISE_TTL_SECONDS = 3 * ADVERTISE_SECONDS
EXPECTED_TTL_SECONDS = 10.0

# The host with the most places free (other than ARGV[2]), counted as expected there; nil if none.
PICK = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local best, best_free = false, 0
for _, host in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if host ~= ARGV[2] then
    local places = tonumber(redis.call('HGET', KEYS[2], host) or '0')
    local live = redis.call('ZCOUNT', ARGV[3] .. host, ARGV[1], '+inf')
    local expected = tonumber(redis.call('GET', ARGV[4] .. host) or '0')
    local free = places - live - expected
    if free > best_free then
      best, best_free = host, free
    end
  end
end
if best then
  redis.call('INCR', ARGV[4] .. best)
  redis.call('PEXPIRE', ARGV[4] .. best, ARGV[5])
end
return best
"""
# One expected arrival less (never below zero).
ARRIVED = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
"""


def host_name() -> str:
    return os.environ.get("CONVEYOR_HOSTNAME") or socket.gethostname()


def host_queue(host: str) -> str:
    return f"{SERVE_QUEUE}.{host}"


def host_of(worker: str) -> str:
    """A worker is named `<host>:<pid>`."""
    return worker.rsplit(":", 1)[0]


def host_advertise(*, host: str, places: int, client: redis.Redis | None = None) -> None:
    client = client or broker_redis()
    until_ms = int((time.time() + ADVERTISE_TTL_SECONDS) * 1000)
    with client.pipeline() as pipe:
        pipe.hset(PLACES_KEY, host, places)
        pipe.zadd(HOSTS_KEY, {host: until_ms})
        pipe.execute()


def host_withdraw(*, host: str) -> None:
    client = broker_redis()
    with client.pipeline() as pipe:
        pipe.zrem(HOSTS_KEY, host)
        pipe.hdel(PLACES_KEY, host)
        pipe.execute()


def host_with_free_place(*, exclude: str | None = None) -> str | None:
    """The advertised host with the most serving places free, counting one more loop expected there
    (so two quick requests do not both pick a host with one place); None when none is known free."""
    now_ms = int(time.time() * 1000)
    best = broker_redis().eval(PICK, 2, HOSTS_KEY, PLACES_KEY, now_ms, exclude or "", SERVERS_PREFIX,
                               EXPECTED_PREFIX, int(EXPECTED_TTL_SECONDS * 1000))
    if best is None:
        return None
    return best.decode() if isinstance(best, bytes) else str(best)


def host_help_arrived(*, host: str) -> None:
    """The help sent to this host took its place: it is no longer expected (else its count expires)."""
    with contextlib.suppress(redis.RedisError):
        broker_redis().eval(ARRIVED, 1, EXPECTED_PREFIX + host)


class HostAdvertiser:
    """A worker's thread that keeps its host advertised while the worker runs (in the worker's main
    process, beside the consumer: never in its way, and a Redis outage only makes it miss a beat)."""

    def __init__(self, *, host: str, places: int, every: float = ADVERTISE_SECONDS) -> None:
        self.host = host
        self.places = places
        self.every = every
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="conveyor-host-advertiser", daemon=True)

    def start(self) -> None:
        logger.info("host %s: %d serving places, queue %s", self.host, self.places, host_queue(self.host))
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=self.every + 1)
        try:
            host_withdraw(host=self.host)
        except redis.RedisError:
            logger.warning("host %s: could not withdraw its places (they expire)", self.host)

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                host_advertise(host=self.host, places=self.places)
            except redis.RedisError:
                logger.warning("host %s: could not advertise its places", self.host, exc_info=True)
            self.stopped.wait(self.every)
