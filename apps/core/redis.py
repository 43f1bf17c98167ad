"""The Redis the broker uses, for what the project keeps there besides messages: dispatch markers,
serving-loop registrations and the lanes' shared capacity. One client per process and URL.

`embedded_redis()` swaps in an in-process Redis (fakeredis, with Lua) for the demo, which must
run with nothing installed; everything else talks to the real server at CELERY_BROKER_URL."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING

import redis
import redis.asyncio
from django.conf import settings

if TYPE_CHECKING:
    import fakeredis

_embedded: "fakeredis.FakeServer | None" = None


@cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def broker_redis() -> redis.Redis:
    if _embedded is not None:
        import fakeredis

        return fakeredis.FakeRedis(server=_embedded)
    return _client_for(settings.CELERY_BROKER_URL)


def async_broker_redis() -> redis.asyncio.Redis:
    """A new asyncio client (bound to the running event loop; close it with the loop)."""
    if _embedded is not None:
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=_embedded)
    # Blocking: hundreds of calls settling at once wait for a connection rather than fail.
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        settings.CELERY_BROKER_URL, max_connections=32, timeout=10, socket_timeout=5,
        socket_connect_timeout=5)
    return redis.asyncio.Redis.from_pool(pool)  # the client owns the pool: aclose() closes both


@contextmanager
def embedded_redis() -> Iterator[None]:
    """While inside, this process's Redis is an in-memory one of its own (the demo); the real one is
    back afterwards."""
    global _embedded
    import fakeredis

    previous, _embedded = _embedded, fakeredis.FakeServer()
    try:
        yield
    finally:
        _embedded = previous
