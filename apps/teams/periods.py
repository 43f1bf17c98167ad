"""The period a spend limit counts in: the calendar month in UTC, or the last `window_days` days."""

from datetime import UTC, datetime, timedelta

from apps.teams.models import SpendLimit, SpendPeriod


def period_start(limit: SpendLimit, now: datetime) -> datetime:
    """Where the period that holds `now` begins. A month rolls over at 00:00 UTC on its first day;
    a rolling window slides with `now`."""
    if limit.period == SpendPeriod.ROLLING:
        return now - timedelta(days=limit.window_days or 1)
    moment = now.astimezone(UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def period_text(limit: SpendLimit) -> str:
    if limit.period == SpendPeriod.ROLLING:
        days = limit.window_days or 1
        return f"the last {days} day{'s' if days != 1 else ''}"
    return "this calendar month (UTC)"
