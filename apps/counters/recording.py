"""Counting what the workers do, for /metrics: in memory as it happens, then into Redis in one
pipelined write per flush (the serving loop flushes once per database round, the batch path once per
chunk of results, the pump once per tick), never a round trip per call.

Every host's processes add to the same Redis hash (families.REDIS_KEY), so whichever web process is
scraped reports the whole deployment. Counters restart from zero if Redis loses the hash, which
Prometheus reads as a counter reset (rate() and increase() handle it).

Metrics never break work: recording is in-memory dict arithmetic, and a failed flush (Redis down) is
logged once until a flush succeeds again, its counts kept for the next flush (they are bounded: one
entry per label set, never per call).
"""

import functools
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ParamSpec

import redis

from apps.core.redis import broker_redis
from apps.counters import families as f
from apps.providers.errors import FailureKind, ProviderFailure
from apps.providers.usage import TokenUsage

logger = logging.getLogger(__name__)

P = ParamSpec("P")


@functools.lru_cache(maxsize=4096)
def field_name(family: str, labels: tuple[str, ...]) -> str:
    """The hash field of one series: the family and its label values, in the family's label order.
    Cached: the label sets are bounded, and the hot path asks for the same few again and again."""
    return json.dumps([family, list(labels)], separators=(",", ":"))


def parse_field(name: str | bytes) -> tuple[str, tuple[str, ...]]:
    family, labels = json.loads(name)
    return family, tuple(labels)


class MetricsBuffer:
    """Counts since the last flush, shared by the threads of one process (the serving loop's event
    loop records calls; its database thread records outcomes and flushes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ints: defaultdict[str, int] = defaultdict(int)
        self._floats: defaultdict[str, float] = defaultdict(float)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._ints[name] += n

    def add_float(self, name: str, x: float) -> None:
        with self._lock:
            self._floats[name] += x

    def take(self) -> tuple[dict[str, int], dict[str, float]]:
        with self._lock:
            ints, floats = dict(self._ints), dict(self._floats)
            self._ints.clear()
            self._floats.clear()
        return ints, floats

    def put_back(self, ints: dict[str, int], floats: dict[str, float]) -> None:
        with self._lock:
            for name, n in ints.items():
                self._ints[name] += n
            for name, x in floats.items():
                self._floats[name] += x


BUFFER = MetricsBuffer()
_failing = False


def _never_raises(func: Callable[P, None]) -> Callable[P, None]:
    """A bug in counting must not lose a result: logged, swallowed."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            func(*args, **kwargs)
        except Exception:
            logger.exception("metrics: %s failed", func.__name__)

    return wrapper


@_never_raises
def record_call(*, model: str, failure: ProviderFailure | None, latency_seconds: float | None) -> None:
    """One answered provider call (a live call, or one request of a batch)."""
    model = f.model_label(model)
    status = failure.http_status if failure is not None else 200
    kind = failure.kind if failure is not None else None
    BUFFER.add(field_name(f.PROVIDER_CALLS, (model, f.http_status_label(status), f.error_type_label(kind))))
    if kind == FailureKind.THROTTLED:
        BUFFER.add(field_name(f.PROVIDER_REFUSALS, (model, "429")))
    elif kind == FailureKind.OVERLOADED:
        BUFFER.add(field_name(f.PROVIDER_REFUSALS, (model, "529")))
    if latency_seconds is not None:
        observe_duration(model, latency_seconds)


def observe_duration(model: str, seconds: float) -> None:
    """Buckets are stored non-cumulative (one increment per call); the collector adds them up."""
    le = next((str(b) for b in f.CALL_DURATION_BUCKETS if seconds <= b), "+Inf")
    BUFFER.add(field_name(f.CALL_DURATION + "_bucket", (model, le)))
    BUFFER.add(field_name(f.CALL_DURATION + "_count", (model,)))
    BUFFER.add_float(field_name(f.CALL_DURATION + "_sum", (model,)), seconds)


@_never_raises
def record_usage(*, model: str, usage: TokenUsage, cost: Decimal) -> None:
    model = f.model_label(model)
    for kind, n in zip(f.TOKEN_KINDS, (usage.input_tokens, usage.output_tokens,
                                       usage.cache_creation_input_tokens, usage.cache_read_input_tokens),
                       strict=True):
        if n:
            BUFFER.add(field_name(f.TOKENS, (model, kind)), n)
    if cost:
        BUFFER.add_float(field_name(f.COST_USD, (model,)), float(cost))


@_never_raises
def record_block_finished(*, status: str, error_code: str = "", n: int = 1) -> None:
    BUFFER.add(field_name(f.BLOCKS_FINISHED, (status, f.error_code_label(error_code))), n)


@_never_raises
def record_pack(*, model: str) -> None:
    BUFFER.add(field_name(f.PACKS, (f.model_label(model),)))


@_never_raises
def record_split(*, model: str) -> None:
    BUFFER.add(field_name(f.PACK_SPLITS, (f.model_label(model),)))


def metrics_flush(client: Any = None) -> None:
    """Add this process's counts to Redis in one MULTI/EXEC (all or nothing, so a retry after an
    error does not count twice). Never raises."""
    global _failing
    ints, floats = BUFFER.take()
    if not ints and not floats:
        return
    try:
        pipe = (client or broker_redis()).pipeline(transaction=True)
        for name, n in ints.items():
            pipe.hincrby(f.REDIS_KEY, name, n)
        for name, x in floats.items():
            pipe.hincrbyfloat(f.REDIS_KEY, name, x)
        pipe.execute()
    except Exception as exc:
        BUFFER.put_back(ints, floats)
        if not _failing:
            _failing = True
            level = logging.WARNING if isinstance(exc, redis.RedisError) else logging.ERROR
            logger.log(level, "metrics: could not write counts to Redis (kept for the next flush; "
                              "logged once until a flush succeeds): %s", exc)
        return
    if _failing:
        _failing = False
        logger.info("metrics: counts are written to Redis again")
