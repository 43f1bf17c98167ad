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
from datetime import datetime
from decimal import Decimal
from functools import partial

from django.db import connection, transaction
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


def spend_and_reserved(*, team_id: int, user_id: int | None, since: datetime) -> tuple[Decimal, Decimal]:
    """What the team's runs (a member's, with `user_id`) spent since `since`, and hold reserved now,
    read in one statement (one snapshot)."""
    runs, attempts = Run._meta.db_table, Attempt._meta.db_table
    owner = "AND r.owner_id = %(user)s" if user_id is not None else ""
    sql = f"""
        SELECT
          (SELECT COALESCE(SUM(r.reserved_usd), 0) FROM {runs} r
            WHERE r.team_id = %(team)s {owner} AND r.reserved_usd > 0),
          (SELECT COALESCE(SUM(a.cost_usd), 0) FROM {attempts} a JOIN {runs} r ON r.id = a.run_id
            WHERE r.team_id = %(team)s {owner} AND a.created_at >= %(since)s)
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"team": team_id, "user": user_id, "since": since})
        reserved, spent = cursor.fetchone()
    return Decimal(spent), Decimal(reserved)


def _room(holder: SpendLimit, *, team: Team, user_id: int | None, whose: str, now: datetime) -> Room:
    assert holder.limit_usd is not None
    spent, reserved = spend_and_reserved(team_id=team.pk, user_id=user_id, since=period_start(holder, now))
    return Room(left=holder.limit_usd - spent - reserved, limit=holder.limit_usd, spent=spent,
                reserved=reserved, whose=whose, period=period_text(holder))


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
    spent, reserved = spend_and_reserved(team_id=team.pk, user_id=user_id, since=period_start(holder, now))
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
