"""What the operator's overview reads. Every query is bounded by an index, never a walk over the big
tables (blocks, attempts): open runs by status, attempts by time range (`attempt_created_idx`, an
index-only scan of the range), dead letters by code and by time (`failure_unresolved_code_idx`,
`failure_failed_at_idx`). Spend this month adds up closed days, each summed once and kept in the cache
(a day's attempts never change once it has ended), and today's attempts."""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import redis
from django.core.cache import cache
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncHour, TruncMinute
from django.utils import timezone

from apps.failures.models import PipelineFailure
from apps.keys.models import ProviderKey
from apps.lanes.selectors import LaneState, lanes_of_keys
from apps.runs.models import Attempt, AttemptOutcome, Run
from apps.runs.transitions import RUN_ENDED

logger = logging.getLogger(__name__)

OPEN_RUNS_SHOWN = 25
RECENT_RUNS_SHOWN = 8
KEYS_SHOWN = 100
THROUGHPUT_MINUTES = 60
DEAD_LETTER_HOURS = 24
# A day's attempts are summed once it ended at least this long ago (results are written in batches, a
# few seconds behind their calls), then read from the cache for the rest of the month.
DAY_CLOSED_AFTER = timedelta(minutes=10)
DAY_KEPT = 40 * 24 * 3600
SPEND_CACHE_KEY = "console:spend:{day:%Y-%m-%d}"
# What an attempt's outcome says about the work, as the throughput chart shows it.
RETRIED = (AttemptOutcome.RETRY, AttemptOutcome.LEASE_EXPIRED, AttemptOutcome.KEY_REJECTED)


# --- runs -------------------------------------------------------------------------------------------

def open_runs() -> QuerySet[Run]:
    """Runs that have not ended (queued, running, paused, canceling), newest first: few, on their
    status index."""
    return (Run.objects.exclude(status__in=RUN_ENDED).select_related("owner", "key")
            .defer("system_prompt", "prompt_template").order_by("-created_at"))


def recent_ended_runs(limit: int = RECENT_RUNS_SHOWN) -> list[Run]:
    return list(Run.objects.filter(status__in=RUN_ENDED).select_related("owner")
                .defer("system_prompt", "prompt_template").order_by("-created_at")[:limit])


def blocks_per_minute(*, run_ids: list[Any], now: datetime) -> dict[Any, int]:
    """Blocks each run answered (attempts recorded) over the last minute: its rate, measured by the
    database rather than by a watcher, so a page shows it from its first load."""
    if not run_ids:
        return {}
    rows = (Attempt.objects.filter(run_id__in=run_ids, created_at__gte=now - timedelta(minutes=1))
            .values_list("run_id").annotate(n=Count("id")).order_by())
    return dict(rows)


# --- spend ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSpend:
    model: str
    today_usd: Decimal
    month_usd: Decimal
    today_attempts: int


@dataclass(frozen=True)
class Spend:
    day: datetime
    month: datetime
    by_model: list[ModelSpend]

    @property
    def today_usd(self) -> Decimal:
        return sum((row.today_usd for row in self.by_model), Decimal(0))

    @property
    def month_usd(self) -> Decimal:
        return sum((row.month_usd for row in self.by_model), Decimal(0))


def start_of_day(moment: datetime) -> datetime:
    return timezone.localtime(moment).replace(hour=0, minute=0, second=0, microsecond=0)


def start_of_month(moment: datetime) -> datetime:
    return start_of_day(moment).replace(day=1)


def _spend_since(start: datetime, end: datetime | None = None) -> dict[str, tuple[Decimal, int]]:
    """Cost and attempts by model recorded in [start, end): an index-only scan of the range."""
    attempts = Attempt.objects.filter(created_at__gte=start)
    if end is not None:
        attempts = attempts.filter(created_at__lt=end)
    rows = attempts.values_list("model").annotate(cost=Sum("cost_usd"), n=Count("id")).order_by()
    return {model: (cost or Decimal(0), n) for model, cost, n in rows}


def _closed_day_spend(day: datetime) -> dict[str, tuple[Decimal, int]]:
    """One ended day's spend by model: summed once, then kept in the cache. A cache that cannot be
    reached costs the sum again, never the page."""
    key = SPEND_CACHE_KEY.format(day=day)
    try:
        kept = cache.get(key)
    except redis.RedisError:
        kept = None
    if kept is not None:
        return {model: (Decimal(cost), n) for model, (cost, n) in kept.items()}
    spend = _spend_since(day, day + timedelta(days=1))
    try:
        cache.set(key, {model: (str(cost), n) for model, (cost, n) in spend.items()}, DAY_KEPT)
    except redis.RedisError:
        logger.warning("console: could not keep the spend of %s in the cache", day.date())
    return spend


def spend_by_model(*, now: datetime) -> Spend:
    """Spend today and this month (the server's time zone) by model, from the attempts: every call
    billed, accepted or not, at the price it was billed (batch calls at half)."""
    day, month = start_of_day(now), start_of_month(now)
    month_total: dict[str, Decimal] = defaultdict(Decimal)
    # This month's days before today from the cache; a day that ended moments ago is read live with
    # today (its last results may still be being written).
    live_from, moment = day, month
    while moment < day:
        if moment + timedelta(days=1) + DAY_CLOSED_AFTER > now:
            live_from = moment
            break
        for model, (cost, _) in _closed_day_spend(moment).items():
            month_total[model] += cost
        moment += timedelta(days=1)
    live = _spend_since(live_from)
    for model, (cost, _) in live.items():
        month_total[model] += cost
    today = live if live_from == day else _spend_since(day)
    nothing = (Decimal(0), 0)
    rows = [ModelSpend(model=model or "(none)", today_usd=today.get(model, nothing)[0], month_usd=total,
                       today_attempts=today.get(model, nothing)[1])
            for model, total in month_total.items()]
    rows.sort(key=lambda row: (-row.month_usd, row.model))
    return Spend(day=day, month=month, by_model=rows)


# --- throughput and refusals ----------------------------------------------------------------------

@dataclass(frozen=True)
class PerMinute:
    """Attempts recorded per minute over the last hour, oldest minute first."""

    minutes: list[datetime]
    succeeded: list[int]
    failed: list[int]
    retried: list[int]
    throttled_429: list[int]
    overloaded_529: list[int]

    @property
    def answered(self) -> int:
        return sum(self.succeeded) + sum(self.failed)

    @property
    def refused(self) -> int:
        return sum(self.throttled_429) + sum(self.overloaded_529)


def per_minute(*, now: datetime, minutes: int = THROUGHPUT_MINUTES) -> PerMinute:
    last = now.replace(second=0, microsecond=0)
    buckets = [last - timedelta(minutes=minutes - 1 - i) for i in range(minutes)]
    rows = (Attempt.objects.filter(created_at__gte=buckets[0])
            .annotate(minute=TruncMinute("created_at")).values_list("minute", "outcome", "http_status")
            .annotate(n=Count("id")).order_by())
    index = {moment: i for i, moment in enumerate(buckets)}
    series: dict[str, list[int]] = {name: [0] * minutes for name in
                                    ("succeeded", "failed", "retried", "throttled_429", "overloaded_529")}
    for minute, outcome, http_status, n in rows:
        i = index.get(minute)
        if i is None:
            continue
        if outcome == AttemptOutcome.SUCCEEDED:
            series["succeeded"][i] += n
        elif outcome == AttemptOutcome.FAILED:
            series["failed"][i] += n
        elif outcome == AttemptOutcome.THROTTLED:
            series["throttled_429" if http_status == 429 else "overloaded_529"][i] += n
        else:
            series["retried"][i] += n
    return PerMinute(minutes=buckets, **series)


# --- dead letters -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CodeDeadLetters:
    error_code: str
    scheduled: int
    parked: int
    last_hour: int
    hour_before: int

    @property
    def unresolved(self) -> int:
        return self.scheduled + self.parked

    @property
    def trend(self) -> str:
        """Whether the code's dead letters grow: recorded in the last hour against the hour before."""
        if self.last_hour > self.hour_before:
            return "growing"
        if self.last_hour < self.hour_before:
            return "slowing"
        return "steady" if self.last_hour else "quiet"


@dataclass(frozen=True)
class DeadLetters:
    by_code: list[CodeDeadLetters]
    hours: list[datetime]
    # Rows recorded (new, or failed again after a replay) per hour, by code, oldest hour first.
    per_hour: dict[str, list[int]] = field(default_factory=dict)

    @property
    def unresolved(self) -> int:
        return sum(row.unresolved for row in self.by_code)


def dead_letters(*, now: datetime, hours: int = DEAD_LETTER_HOURS) -> DeadLetters:
    unresolved = (PipelineFailure.objects.filter(resolved_at__isnull=True).values_list("error_code")
                  .annotate(scheduled=Count("id", filter=Q(next_retry_at__isnull=False)),
                            parked=Count("id", filter=Q(next_retry_at__isnull=True))).order_by())
    last = now.replace(minute=0, second=0, microsecond=0)
    buckets = [last - timedelta(hours=hours - 1 - i) for i in range(hours)]
    recent = (PipelineFailure.objects.filter(failed_at__gte=buckets[0])
              .annotate(hour=TruncHour("failed_at")).values_list("hour", "error_code")
              .annotate(n=Count("id")).order_by())
    index = {moment: i for i, moment in enumerate(buckets)}
    per_hour: dict[str, list[int]] = defaultdict(lambda: [0] * hours)
    last_hour: dict[str, int] = defaultdict(int)
    hour_before: dict[str, int] = defaultdict(int)
    for hour, code, n in recent:
        if hour in index:
            per_hour[code][index[hour]] += n
    # "The last hour" is the last 60 minutes, not the clock hour (which may have just begun).
    hour_ago = now - timedelta(hours=1)
    for code, last, before in (PipelineFailure.objects.filter(failed_at__gte=now - timedelta(hours=2))
                               .values_list("error_code")
                               .annotate(last=Count("id", filter=Q(failed_at__gte=hour_ago)),
                                         before=Count("id", filter=Q(failed_at__lt=hour_ago)))
                               .order_by()):
        last_hour[code], hour_before[code] = last, before
    states = {code: (scheduled, parked) for code, scheduled, parked in unresolved}
    codes = set(states) | set(last_hour) | set(hour_before)
    rows = [CodeDeadLetters(error_code=code, scheduled=states.get(code, (0, 0))[0],
                            parked=states.get(code, (0, 0))[1], last_hour=last_hour.get(code, 0),
                            hour_before=hour_before.get(code, 0)) for code in codes]
    rows.sort(key=lambda row: (-row.unresolved, -row.last_hour, row.error_code))
    return DeadLetters(by_code=rows, hours=buckets, per_hour=dict(per_hour))


# --- keys and their lanes ---------------------------------------------------------------------------

@dataclass(frozen=True)
class KeyLanes:
    key: ProviderKey
    open_runs: int
    # None when Redis cannot say.
    lanes: list[LaneState] | None


def keys_and_lanes(*, limit: int = KEYS_SHOWN) -> list[KeyLanes]:
    """Every key (its owner, validity) with its lanes' state from Redis (one SCAN for all of them) and
    how many of its runs have not ended."""
    keys = list(ProviderKey.objects.select_related("owner").defer("secret_ciphertext")
                .order_by("owner__username", "label")[:limit])
    runs = dict(Run.objects.exclude(status__in=RUN_ENDED).filter(key__in=keys).values_list("key_id")
                .annotate(n=Count("id")).order_by())
    lanes: dict[int, list[LaneState]] | None
    try:
        found: dict[int, list[LaneState]] = defaultdict(list)
        for key_id, state in lanes_of_keys(keys=keys):
            found[key_id].append(state)
        lanes = found
    except redis.RedisError:
        lanes = None
    return [KeyLanes(key=key, open_runs=runs.get(key.pk, 0),
                     lanes=None if lanes is None else lanes.get(key.pk, [])) for key in keys]
