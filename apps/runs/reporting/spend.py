"""Spend reports: what was spent, from the recorded usage (one Attempt row per call and block, with
its tokens and cost), grouped by team, member, key, model and day (UTC), over the runs the caller may
read (apps/teams/access.py). The same rows feed the API (JSON, CSV) and the admin's spend page."""

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.runs.models import Attempt
from apps.runs.selectors import runs_visible_to

GROUPS = ("team", "member", "key", "model", "day")
# What each group is read from, on an Attempt: (its value, a label for people).
GROUP_FIELDS: dict[str, tuple[str, ...]] = {
    "team": ("team_id", "team_name"),
    "member": ("member",),
    "key": ("key_id", "key_label"),
    "model": ("model",),
    "day": ("day",),
}
TOTALS = ("calls", "input_tokens", "output_tokens", "cache_creation_input_tokens",
          "cache_read_input_tokens", "cost_usd")


def month_start(now: datetime | None = None) -> date:
    moment = (now or timezone.now()).astimezone(UTC)
    return moment.date().replace(day=1)


def spend_attempts(*, user: Any, team: int | None = None, since: date | None = None,
                   until: date | None = None) -> QuerySet[Attempt]:
    """The calls the report counts: of runs `user` may read (of `team`'s runs only, if given), made
    from `since` (00:00 UTC) to before `until` (00:00 UTC)."""
    attempts = Attempt.objects.filter(run_id__in=runs_visible_to(user=user).values("pk"))
    if team is not None:
        attempts = attempts.filter(run__team_id=team)
    if since is not None:
        attempts = attempts.filter(created_at__gte=datetime.combine(since, time.min, tzinfo=UTC))
    if until is not None:
        attempts = attempts.filter(created_at__lt=datetime.combine(until, time.min, tzinfo=UTC))
    return attempts


def spend_rows(*, user: Any, group_by: Sequence[str] = ("day",), team: int | None = None,
               since: date | None = None, until: date | None = None) -> list[dict[str, Any]]:
    """One row per combination of the groups asked for (in GROUPS' order), with calls, tokens and
    cost; sorted by the groups."""
    groups = [g for g in GROUPS if g in group_by]
    fields = [field for g in groups for field in GROUP_FIELDS[g]]
    annotations = {
        "team_id": F("run__team_id"), "team_name": F("run__team__name"),
        "member": F("run__owner__username"), "key_label": F("key__label"),
        "day": TruncDate("created_at", tzinfo=UTC),
    }
    rows = (spend_attempts(user=user, team=team, since=since, until=until)
            .annotate(**{name: annotations[name] for name in fields if name in annotations})
            .values(*fields)
            .annotate(calls=Count("pk"), input_tokens=Sum("input_tokens"), output_tokens=Sum("output_tokens"),
                      cache_creation_input_tokens=Sum("cache_creation_input_tokens"),
                      cache_read_input_tokens=Sum("cache_read_input_tokens"), cost_usd=Sum("cost_usd"))
            .order_by(*[f for f in fields if f not in ("team_name", "key_label")]))
    return [dict(row) for row in rows]


def spend_total(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = dict.fromkeys(TOTALS, 0)
    total["cost_usd"] = Decimal(0)
    for row in rows:
        for name in TOTALS:
            total[name] += row[name] or 0
    return total


def spend_csv(rows: list[dict[str, Any]], group_by: Sequence[str]) -> str:
    """The rows as CSV, a header first: the groups' columns, then the totals."""
    groups = [g for g in GROUPS if g in group_by]
    columns = [field for g in groups for field in GROUP_FIELDS[g]] + list(TOTALS)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return out.getvalue()
