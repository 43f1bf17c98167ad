"""What the scrape reads from PostgreSQL: small aggregates over indexed columns, never a walk over the
blocks table (millions of rows). Blocks pending come from the runs' counters; claimed blocks, due
work and dead-letter rows are counted through partial indexes."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, Sum
from django.utils import timezone

from apps.failures.models import FailureState, PipelineFailure, state_filter
from apps.health.heartbeats import PUMP, heartbeat_last
from apps.keys.models import ProviderKey
from apps.runs.models import Attempt, Block, BlockStatus, PausedCause, Run, RunMode
from apps.runs.reporting.costs import NO_HIT_AFTER_CALLS, calls_after_first_reply
from apps.runs.transitions import RUN_ACTIVE, RUN_ENDED, RunStatus
from apps.teams.models import Membership, Team

# A run with due work and no call answered for this long counts as stalled.
STALL_SECONDS = 600
# The most caching runs without a cache read one scrape looks into.
NOT_HITTING_SCAN = 200


@dataclass(frozen=True)
class DatabaseGauges:
    runs_by_status: dict[str, int]
    runs_paused_by_cause: dict[str, int]
    runs_caching: int
    runs_cache_not_hitting: int
    runs_stalled: int
    blocks_pending: int
    blocks_claimed: int
    dead_letters: dict[str, int]
    keys_by_validity: dict[str, int]
    pump_lag_seconds: float | None
    # (team, member or "", threshold reached 0/80/100, limit in dollars) for every limit that is set.
    team_limits: list[tuple[str, str, int, float]]


def runs_by_status() -> dict[str, int]:
    counts = dict(Run.objects.order_by().values_list("status").annotate(n=Count("id")))
    return {status: counts.get(status, 0) for status in RunStatus.values}


def runs_paused_by_cause() -> dict[str, int]:
    counts = dict(Run.objects.filter(status=RunStatus.PAUSED).order_by().values_list("paused_cause")
                  .annotate(n=Count("id")))
    return {cause: counts.get(cause, 0) for cause in PausedCause.values}


def runs_caching() -> int:
    """Active runs with prompt caching on: the cache-hit alert only means something while there are."""
    return Run.objects.filter(status__in=RUN_ACTIVE, options__cache=True).count()


def runs_cache_not_hitting() -> int:
    """Active caching runs past their warm-up (a call has answered) that have read nothing from the
    cache in NO_HIT_AFTER_CALLS calls sent after the first reply: the per-run flag `cache_not_hitting`
    (apps.runs.reporting.costs), counted. Only runs with no cache read at all are looked into, at most
    NOT_HITTING_SCAN of them, each by one query on its attempts' index."""
    candidates = (Run.objects.filter(status__in=RUN_ACTIVE, options__cache=True, cache_warmed=True,
                                     cache_read_input_tokens=0)
                  .order_by("-created_at").values_list("pk", flat=True)[:NOT_HITTING_SCAN])
    return sum(1 for run_id in candidates if calls_after_first_reply(run_id) >= NO_HIT_AFTER_CALLS)


def runs_stalled(now: datetime) -> int:
    """Active live runs, older than the stall window, with due blocks and no call answered in it
    (no Attempt row: every answered call, lease expiry and fenced-out call writes one). A run whose
    key is throttled for that long is stalled too, which is worth an alert of its own."""
    since = now - timedelta(seconds=STALL_SECONDS)
    return (
        Run.objects.filter(status__in=RUN_ACTIVE, effective_mode=RunMode.LIVE, created_at__lt=since)
        .filter(Exists(Block.objects.due(now).filter(run=OuterRef("pk"))))
        .exclude(Exists(Attempt.objects.filter(run=OuterRef("pk"), created_at__gte=since)))
        .count()
    )


def blocks_open() -> tuple[int, int]:
    """(pending, claimed). Open blocks are each unfinished run's total less its terminal counters
    (which move in the same transaction as the blocks); claimed ones are counted on their partial
    index, and pending is the rest."""
    open_ = Run.objects.exclude(status__in=RUN_ENDED).aggregate(
        n=Sum(F("total_blocks") - F("completed_blocks") - F("failed_blocks") - F("canceled_blocks"))
    )["n"] or 0
    claimed = Block.objects.filter(status=BlockStatus.CLAIMED).count()
    return max(0, open_ - claimed), claimed


def dead_letters() -> dict[str, int]:
    counts = PipelineFailure.objects.filter(resolved_at__isnull=True).aggregate(
        scheduled=Count("id", filter=state_filter(FailureState.SCHEDULED)),
        parked=Count("id", filter=state_filter(FailureState.PARKED)),
    )
    return {FailureState.SCHEDULED.value: counts["scheduled"], FailureState.PARKED.value: counts["parked"]}


def keys_by_validity() -> dict[str, int]:
    counts = ProviderKey.objects.aggregate(
        valid=Count("id", filter=Q(is_valid=True)), invalid=Count("id", filter=Q(is_valid=False)),
        unknown=Count("id", filter=Q(is_valid__isnull=True)),
    )
    return dict(counts)


def pump_lag_seconds(now: datetime) -> float | None:
    """Seconds since the pump last ran to its end; None when it never has."""
    last = heartbeat_last(PUMP)
    return None if last is None else max(0.0, (now - last).total_seconds())


def database_gauges() -> DatabaseGauges:
    now = timezone.now()
    pending, claimed = blocks_open()
    return DatabaseGauges(
        runs_by_status=runs_by_status(), runs_paused_by_cause=runs_paused_by_cause(),
        runs_caching=runs_caching(), runs_cache_not_hitting=runs_cache_not_hitting(),
        runs_stalled=runs_stalled(now), blocks_pending=pending,
        blocks_claimed=claimed, dead_letters=dead_letters(), keys_by_validity=keys_by_validity(),
        pump_lag_seconds=pump_lag_seconds(now), team_limits=team_limits(),
    )


def team_limits() -> list[tuple[str, str, int, float]]:
    """Each team and member limit that is set, with the threshold its spend last reached (kept on the
    row by beat's conveyor.teams.spend_alerts): no spend is summed at scrape time."""
    rows = [(name, "", level, float(limit or 0)) for name, level, limit in
            Team.objects.filter(limit_usd__isnull=False).values_list("name", "alert_level", "limit_usd")]
    rows += [(team, user, level, float(limit or 0)) for team, user, level, limit in
             Membership.objects.filter(limit_usd__isnull=False)
             .values_list("team__name", "user__username", "alert_level", "limit_usd")]
    return rows


def keys_for_lanes() -> list[Any]:
    return list(ProviderKey.objects.only("id", "tier", "rpm_limit", "itpm_limit", "otpm_limit"))
