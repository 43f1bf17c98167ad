"""Team spend limits, enforced as run budgets are: at reservation time, under locks, across all of a
team's runs.

A team (apps/teams/models.Team) and a member within it (Membership) may each carry a limit per
calendar month (UTC) or per rolling window of days. What a limit has left is

    limit - spent in the period - reserved now

where *spent* is the recorded cost of the Attempt rows of the team's runs (of the member's runs in
the team, for a member's limit) made since the period began, and *reserved* the worst cases the
team's runs hold for calls in flight (`Run.reserved_usd`). Both sums are read in ONE statement, so a
result written meanwhile (which moves a reservation into an Attempt's cost in one transaction) is
counted in one of the two, never in neither.

A claim of a team run (services/claiming.py) locks the run row, then the team's row (`FOR NO KEY
UPDATE`): claims of one team's runs take turns, so two runs cannot both reserve the last dollar.
Results do not lock the team (they only lower what is reserved). Lock order: run, then team,
everywhere (claims and a split's top-up, budget.budget_reserve_call).

When the next block's worst case does not fit:
- with calls of this run in flight, the claim waits for them (`Claim.budget_wait`), as a run budget
  does;
- with none, the run pauses with cause `team_budget`, saying which limit, what the block could cost
  and what is left. The pump looks at those runs every tick (`runs_resume_for_team_budget`): a new
  period, a raised limit, or calls of the team's other runs that settled below their worst case give
  it room, and it resumes. Raising a limit through the API resumes them at once
  (apps/teams/signals.spend_limit_changed -> apps/runs/receivers.py)."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.core.formatting import format_usd
from apps.runs.dispatch import run_dispatch_on_commit
from apps.runs.models import Attempt, PausedCause, Run
from apps.runs.services.budget import next_block_worst_usd, usd_at_least, usd_left
from apps.teams.models import Membership, SpendLimit, Team
from apps.teams.periods import period_start, period_text


@dataclass(frozen=True)
class Room:
    """What one limit leaves, and whose limit it is."""

    left: Decimal
    limit: Decimal
    spent: Decimal
    reserved: Decimal
    # "team Acme's limit" or "alice's limit in team Acme"
    whose: str
    period: str


# Calls recorded longer ago than this are committed (a result transaction takes milliseconds), so
# what they spent may be kept (SpendLimit.spent_cache_*) and only later calls summed at each claim.
SETTLED = timedelta(seconds=60)
# The kept sum is moved forward when it is older than this, keeping each claim's sum small.
REFRESH = timedelta(minutes=2)


@dataclass(frozen=True)
class Usage:
    spent: Decimal
    reserved: Decimal
    # What was spent from `since` to `settled_at`, to keep (None: nothing new to keep).
    settled: Decimal | None = None
    settled_at: datetime | None = None


def spend_and_reserved(*, team_id: int, user_id: int | None, since: datetime,
                       cache: SpendLimit | None = None, now: datetime | None = None) -> Usage:
    """What the team's runs (a member's, with `user_id`) spent since `since`, and hold reserved now,
    read in ONE statement (one snapshot: a result written meanwhile moves a reservation into an
    Attempt's cost in one transaction, so it is counted once, never zero times).

    With `cache` (the holder's kept sum, from `spent_cache_since` to `spent_cache_until`, if it
    still covers `since`): the kept sum, plus the calls after it, less those before `since` (a
    rolling window that slid). Without: every call since `since`. Either way it also returns what
    to keep next (up to `now - SETTLED`) when the kept sum is older than REFRESH."""
    now = now or timezone.now()
    kept = None
    if (cache is not None and cache.spent_cache_usd is not None and cache.spent_cache_since is not None
            and cache.spent_cache_until is not None
            and cache.spent_cache_since <= since < cache.spent_cache_until):
        kept = (cache.spent_cache_usd, cache.spent_cache_since, cache.spent_cache_until)
    live_from = kept[2] if kept else since
    drop_from = kept[1] if kept else since
    settle_at = now - SETTLED
    keep = settle_at > live_from + REFRESH
    runs, attempts = Run._meta.db_table, Attempt._meta.db_table
    owner = "AND r.owner_id = %(user)s" if user_id is not None else ""
    calls = f"SELECT COALESCE(SUM(a.cost_usd), 0) FROM {attempts} a JOIN {runs} r ON r.id = a.run_id " \
            f"WHERE r.team_id = %(team)s {owner}"
    sql = f"""
        SELECT
          (SELECT COALESCE(SUM(r.reserved_usd), 0) FROM {runs} r
            WHERE r.team_id = %(team)s {owner} AND r.reserved_usd > 0),
          ({calls} AND a.created_at >= %(live_from)s),
          ({calls} AND a.created_at >= %(drop_from)s AND a.created_at < %(since)s),
          ({calls} AND a.created_at >= %(live_from)s AND a.created_at < %(settle_at)s)
    """
    params = {"team": team_id, "user": user_id, "live_from": live_from, "drop_from": drop_from,
              "since": since, "settle_at": settle_at if keep else live_from}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        reserved, live, dropped, settling = cursor.fetchone()
    base = (kept[0] if kept else Decimal(0)) - Decimal(dropped)
    spent = base + Decimal(live)
    if not keep:
        return Usage(spent=spent, reserved=Decimal(reserved))
    return Usage(spent=spent, reserved=Decimal(reserved), settled=base + Decimal(settling),
                 settled_at=settle_at)


def _keep(holder: SpendLimit, usage: Usage, since: datetime) -> None:
    """Store what the holder spent up to a settled moment (a conditional write: a concurrent claim
    that kept a later sum wins)."""
    if usage.settled is None or usage.settled_at is None:
        return
    rows = type(holder)._default_manager.filter(pk=holder.pk)
    rows = rows.filter(Q(spent_cache_until__isnull=True) | Q(spent_cache_until__lt=usage.settled_at))
    rows.update(spent_cache_usd=usage.settled, spent_cache_since=since, spent_cache_until=usage.settled_at)


def _room(holder: SpendLimit, *, team: Team, user_id: int | None, whose: str, now: datetime) -> Room:
    assert holder.limit_usd is not None
    since = period_start(holder, now)
    usage = spend_and_reserved(team_id=team.pk, user_id=user_id, since=since, cache=holder, now=now)
    _keep(holder, usage, since)
    return Room(left=holder.limit_usd - usage.spent - usage.reserved, limit=holder.limit_usd,
                spent=usage.spent, reserved=usage.reserved, whose=whose, period=period_text(holder))


def limits_of(*, team: Team, user_id: int) -> list[tuple[SpendLimit, int | None, str]]:
    """The limits a run of `user_id` in `team` counts against: the team's, the member's."""
    found: list[tuple[SpendLimit, int | None, str]] = []
    if team.limit_usd is not None:
        found.append((team, None, f"team {team.name}'s limit"))
    member = Membership.objects.select_related("user").filter(team=team, user_id=user_id).first()
    if member is not None and member.limit_usd is not None:
        found.append((member, user_id, f"{member.user.get_username()}'s limit in team {team.name}"))
    return found


def team_room(run: Run, *, lock: bool) -> Room | None:
    """The tightest room the run's team limits leave (None: the run has no team, or it no limit).
    `lock`: take the team's row first (a claim or a top-up, under the run's lock already)."""
    if run.team_id is None:
        return None
    team = Team.objects.get(pk=run.team_id)
    limits = limits_of(team=team, user_id=run.owner_id)
    if not limits:  # a team without limits takes no lock: its runs' claims do not take turns
        return None
    if lock:
        team = Team.objects.select_for_update(no_key=True).get(pk=run.team_id)
        limits = limits_of(team=team, user_id=run.owner_id)
    now = timezone.now()
    rooms = [_room(holder, team=team, user_id=user_id, whose=whose, now=now)
             for holder, user_id, whose in limits]
    return min(rooms, key=lambda room: room.left) if rooms else None


def team_paused_reason(room: Room, *, next_worst: Decimal) -> str:
    return (f"paused: the next block could cost up to {usd_at_least(next_worst)} and "
            f"{usd_left(room.left)} is left of {room.whose} of {usd_at_least(room.limit)} for "
            f"{room.period} ({format_usd(room.spent)} spent, {format_usd(room.reserved)} in flight)")


def team_resume_refusal(run: Run) -> str | None:
    """Why a run its team's limit paused cannot resume yet (None: it can)."""
    room = team_room(run, lock=False)
    worst = next_block_worst_usd(run)
    if room is None or worst is None or worst <= room.left:
        return None
    return (f"its next block could cost up to {usd_at_least(worst)} and {usd_left(room.left)} is left "
            f"of {room.whose} for {room.period}: raise the limit, or wait for the period to roll over")


def runs_resume_for_team_budget(*, team_id: int | None = None) -> int:
    """Resume the runs a team limit paused that it can now pay for the next block of (a new period,
    a raised or removed limit, calls of other runs that settled). The pump calls it every tick (and
    the limit's API at once): a query on paused runs, empty when no team limit holds anything."""
    paused = Run.objects.paused_by(PausedCause.TEAM_BUDGET)
    if team_id is not None:
        paused = paused.filter(team_id=team_id)
    resumed = 0
    for run in paused.order_by("created_at"):
        if team_resume_refusal(run) is not None:
            continue
        with transaction.atomic():
            if Run.objects.filter(pk=run.pk).paused_by(PausedCause.TEAM_BUDGET).resume():
                run_dispatch_on_commit(run_id=run.pk)
                resumed += 1
    return resumed


# --- the 80% and 100% thresholds -------------------------------------------------------------------

ALERT_LEVELS = (80, 100)


def _level(holder: SpendLimit, *, team: Team, user_id: int | None, now: datetime) -> tuple[int, Decimal]:
    """The threshold the holder's spend has reached (0, 80, 100) and the spend. 100: spent the limit,
    or a run it holds paused cannot pay for its next block (the limit stopped work: with worst cases
    reserved, spend itself stops short of the limit)."""
    assert holder.limit_usd is not None
    limit = holder.limit_usd
    usage = spend_and_reserved(team_id=team.pk, user_id=user_id, since=period_start(holder, now),
                               cache=holder, now=now)
    spent, reserved = usage.spent, usage.reserved
    if spent >= limit:
        return 100, spent
    paused = Run.objects.paused_by(PausedCause.TEAM_BUDGET).filter(team_id=team.pk)
    if user_id is not None:
        paused = paused.filter(owner_id=user_id)
    left = limit - spent - reserved
    for run in paused.order_by("created_at")[:20]:
        worst = next_block_worst_usd(run)
        if worst is not None and worst > left:
            return 100, spent
    return (80 if spent >= limit * Decimal("0.8") else 0), spent


def spend_alerts_check(*, now: datetime | None = None) -> int:
    """Beat's `conveyor.teams.spend_alerts`: each limit's threshold, announced once per crossing (a
    conditional write of `alert_level`; the signal goes after commit) and re-armed when a new period
    or a higher limit brings the spend back under it. Returns how many crossings were announced."""
    from apps.teams.signals import spend_threshold_reached

    now = now or timezone.now()
    holders: list[tuple[SpendLimit, Team, int | None]] = [
        (team, team, None) for team in Team.objects.filter(limit_usd__isnull=False)]
    holders += [(m, m.team, m.user_id) for m in
                Membership.objects.filter(limit_usd__isnull=False).select_related("team")]
    announced = 0
    for holder, team, user_id in holders:
        level, spent = _level(holder, team=team, user_id=user_id, now=now)
        rows = type(holder)._default_manager.filter(pk=holder.pk)
        if level < holder.alert_level:
            rows.filter(alert_level=holder.alert_level).update(alert_level=level)
            continue
        if level == holder.alert_level:
            continue
        with transaction.atomic():
            if not rows.filter(alert_level__lt=level).update(alert_level=level):
                continue  # another check announced it
            event = {"team_id": team.pk, "user_id": user_id, "level": level, "spent_usd": spent,
                     "limit_usd": holder.limit_usd, "period": holder.period,
                     "window_days": holder.window_days, "period_start": period_start(holder, now)}
            transaction.on_commit(partial(spend_threshold_reached.send, sender=Team, **event), robust=True)
        announced += 1
    return announced


# --- where each limit stands ---------------------------------------------------------------------

def limits_status(*, teams: QuerySet[Team], now: datetime | None = None) -> list[dict[str, Any]]:
    """Each limit set on `teams` (the team's, each member's) with what its period has spent, what is
    reserved for calls in flight, what is left, and how many runs it holds paused."""
    now = now or timezone.now()
    rows: list[dict[str, Any]] = []
    for team in teams.prefetch_related("memberships__user").order_by("name"):
        holders: list[tuple[SpendLimit, int | None, str | None]] = []
        if team.limit_usd is not None:
            holders.append((team, None, None))
        holders += [(m, m.user_id, m.user.get_username()) for m in team.memberships.all()
                    if m.limit_usd is not None]
        for holder, user_id, member in holders:
            assert holder.limit_usd is not None
            since = period_start(holder, now)
            usage = spend_and_reserved(team_id=team.pk, user_id=user_id, since=since, cache=holder, now=now)
            paused = Run.objects.paused_by(PausedCause.TEAM_BUDGET).filter(team_id=team.pk)
            rows.append({
                "team_id": team.pk, "team": team.name, "member": member, "limit_usd": holder.limit_usd,
                "period": holder.period, "window_days": holder.window_days, "period_start": since,
                "spent_usd": usage.spent, "reserved_usd": usage.reserved,
                "left_usd": max(holder.limit_usd - usage.spent - usage.reserved, Decimal(0)),
                "alert_level": holder.alert_level,
                "paused_runs": (paused.filter(owner_id=user_id) if user_id else paused).count(),
            })
    return rows
