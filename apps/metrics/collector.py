"""The scrape: one custom prometheus_client Collector that reads everything when Prometheus asks.

Gauges are computed now, from PostgreSQL (selectors.py) and from the lanes' state in Redis; counters
and the latency histogram are what every worker added up in Redis (apps/counters/recording.py).
Nothing is kept in the web process, so any web process on any host answers the same, and a scrape
reports the whole deployment. A source that cannot be read leaves its families without samples and says so in
`conveyor_metrics_source_up`; the scrape itself still answers."""

import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from apps.core.redis import broker_redis
from apps.counters import families as f
from apps.counters.recording import parse_field
from apps.lanes.selectors import lanes_of_keys
from apps.metrics.selectors import STALL_SECONDS, DatabaseGauges, database_gauges, keys_for_lanes

logger = logging.getLogger(__name__)

P = f.PREFIX


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, doc, labels=labels)


def database_families(gauges: DatabaseGauges | None) -> list[Metric]:
    runs = _gauge("runs", "Runs by status", ["status"])
    paused = _gauge("runs_paused", "Paused runs by cause (budget, key_rejected, ...)", ["cause"])
    caching = _gauge("runs_caching", "Active runs with prompt caching on")
    not_hitting = _gauge("runs_cache_not_hitting", "Active caching runs past their warm-up that read "
                                                   "nothing from the cache (the run's cache_not_hitting)")
    stalled = _gauge("runs_stalled", f"Active runs with due blocks and no call answered for "
                                     f"{STALL_SECONDS} s")
    blocks = _gauge("blocks", "Open blocks: pending (waiting or due) and claimed (held by a worker)",
                    ["status"])
    letters = _gauge("dead_letters", "Unresolved dead-letter rows: scheduled for replay, or parked "
                                     "(replayed only by hand)", ["state"])
    keys = _gauge("keys", "Provider keys by validity (invalid: the provider refused it)", ["validity"])
    lag = _gauge("pump_lag_seconds", "Seconds since the pump last ran to its end (no sample: never)")
    alert = _gauge("team_spend_alert_level", "The threshold a team's (member: a member's) spend limit "
                   "has reached in its period: 0, 80 or 100 (%); 100: its runs pause", ["team", "member"])
    limit = _gauge("team_spend_limit_usd", "A team's (member: a member's) spend limit per period",
                   ["team", "member"])
    if gauges is not None:
        for status, n in gauges.runs_by_status.items():
            runs.add_metric([status], n)
        for cause, n in gauges.runs_paused_by_cause.items():
            paused.add_metric([cause], n)
        caching.add_metric([], gauges.runs_caching)
        not_hitting.add_metric([], gauges.runs_cache_not_hitting)
        stalled.add_metric([], gauges.runs_stalled)
        blocks.add_metric(["pending"], gauges.blocks_pending)
        blocks.add_metric(["claimed"], gauges.blocks_claimed)
        for state, n in gauges.dead_letters.items():
            letters.add_metric([state], n)
        for validity, n in gauges.keys_by_validity.items():
            keys.add_metric([validity], n)
        if gauges.pump_lag_seconds is not None:
            lag.add_metric([], gauges.pump_lag_seconds)
        for team, member, level, amount in gauges.team_limits:
            alert.add_metric([team, member], level)
            limit.add_metric([team, member], amount)
    return [runs, paused, caching, not_hitting, stalled, blocks, letters, keys, lag, alert, limit]


def lane_families(lanes: list) -> list[Metric]:
    labels = ["key_id", "group"]
    throttled = _gauge("lane_throttled", "1 while the key's lane is held by a 429 (Retry-After)", labels)
    overloaded = _gauge("lane_overloaded", "1 while the lane is paused after overload (529, 5xx)", labels)
    rate = _gauge("lane_rate_rpm", "Calls started per minute on the lane, over about the last minute",
                  labels)
    in_flight = _gauge("lane_in_flight", "Calls in flight on the lane, on every worker", labels)
    window = _gauge("lane_window", "The lane's concurrency window (cut on overload, grown back)", labels)
    useful = _gauge("lane_useful_concurrency", "Calls the lane can use in flight: its limits' calls per "
                    "second x its latency x headroom (Little's law; 0: not known yet)", labels)
    ceiling = _gauge("lane_ceiling_bound", "1 while a worker's in-flight ceiling (SERVE_MAX_IN_FLIGHT or "
                                           "its open files) holds back runs the lane has room for", labels)
    for key_id, state in lanes:
        values = [str(key_id), state.group]
        throttled.add_metric(values, 1 if state.throttled_until is not None else 0)
        overloaded.add_metric(values, 1 if state.overloaded_until is not None else 0)
        rate.add_metric(values, state.rate_rpm)
        in_flight.add_metric(values, state.in_flight)
        window.add_metric(values, state.window)
        useful.add_metric(values, state.useful_concurrency)
        ceiling.add_metric(values, 1 if state.ceiling_bound else 0)
    return [throttled, overloaded, rate, in_flight, window, useful, ceiling]


def counter_families(stored: Mapping[bytes | str, bytes | str]) -> list[Metric]:
    counters = {name: CounterMetricFamily(P + name, doc, labels=list(labels))
                for name, (labels, doc) in f.COUNTERS.items()}
    buckets: defaultdict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
    sums: dict[tuple[str, ...], float] = {}
    for raw_name, raw_value in stored.items():
        try:
            family, labels = parse_field(raw_name)
            value = float(raw_value)
        except (ValueError, TypeError):
            continue
        if family in counters and len(labels) == len(f.COUNTERS[family][0]):
            counters[family].add_metric(list(labels), value)
        elif family == f.CALL_DURATION + "_bucket" and len(labels) == 2:
            buckets[labels[:1]][labels[1]] = value
        elif family == f.CALL_DURATION + "_sum" and len(labels) == 1:
            sums[labels] = value
    histogram = HistogramMetricFamily(
        P + f.CALL_DURATION, "Provider call latency in seconds, from the call's start to its answer",
        labels=list(f.CALL_DURATION_LABELS))
    for labels in sorted(set(buckets) | set(sums)):
        counts, cumulative, series = buckets.get(labels, {}), 0.0, []
        for bound in [*(str(b) for b in f.CALL_DURATION_BUCKETS), "+Inf"]:
            cumulative += counts.get(bound, 0.0)
            series.append((bound, cumulative))
        histogram.add_metric(list(labels), series, sum_value=sums.get(labels, 0.0))
    return [*counters.values(), histogram]


class ConveyorCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        up = _gauge("metrics_source_up", "1 when the scrape could read the source (postgres, redis)",
                    ["source"])
        try:
            gauges = database_gauges()
            keys = keys_for_lanes()
            postgres_up = 1
        except Exception:
            logger.exception("metrics: could not read PostgreSQL")
            gauges, keys, postgres_up = None, [], 0
        try:
            client = broker_redis()
            stored = client.hgetall(f.REDIS_KEY)
            lanes = lanes_of_keys(keys=keys)
            redis_up = 1
        except Exception:
            logger.exception("metrics: could not read Redis")
            stored, lanes, redis_up = {}, [], 0
        up.add_metric(["postgres"], postgres_up)
        up.add_metric(["redis"], redis_up)
        yield from database_families(gauges)
        yield from lane_families(lanes)
        yield from counter_families(stored)
        yield up


def registry() -> CollectorRegistry:
    """A registry of Conveyor's families only (the web process's own CPU and memory say nothing about
    the deployment, and would differ from host to host)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(ConveyorCollector())
    return reg
