"""The admin's spend page (`admin:spend`): what was spent per day, by team, and by member, key and
model, from the recorded usage (apps/runs/reporting/spend.py, the same rows as GET /api/v1/spend/),
with a chart drawn by charts.py. Shown to staff who may view runs (runs.view_run)."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.dateparse import parse_date
from django.views.decorators.cache import never_cache

from apps.console.charts import Series, stacked_bars
from apps.runs.reporting.spend import month_start, spend_rows
from apps.teams.models import Team

COLOURS = ("#5bc0de", "#5cb85c", "#f0ad4e", "#9b59b6", "#d9534f", "#999999")
TEAMS_CHARTED = 5
PERSONAL = "personal runs"


def _days(since: date, until: date) -> list[datetime]:
    return [datetime.combine(since + timedelta(days=n), datetime.min.time(), tzinfo=UTC)
            for n in range((until - since).days)]


def _cents(amount: Decimal | None) -> int:
    return int(((amount or Decimal(0)) * 100).to_integral_value())


def spend_chart(rows: list[dict[str, Any]], *, since: date, until: date) -> str:
    """Cost per day (UTC) in cents, stacked by team (the five that spent most, the rest together)."""
    days = _days(since, until)
    index = {d.date(): i for i, d in enumerate(days)}
    per_team: dict[str, list[int]] = {}
    for row in rows:
        name = row["team_name"] or PERSONAL
        values = per_team.setdefault(name, [0] * len(days))
        if row["day"] in index:
            values[index[row["day"]]] += _cents(row["cost_usd"])
    ranked = sorted(per_team, key=lambda name: -sum(per_team[name]))
    shown, rest = ranked[:TEAMS_CHARTED], ranked[TEAMS_CHARTED:]
    series = [Series(name, COLOURS[i], per_team[name]) for i, name in enumerate(shown)]
    if rest:
        series.append(Series("other teams", COLOURS[-1],
                             [sum(per_team[name][i] for name in rest) for i in range(len(days))]))
    return stacked_bars(title="Spend per day, by team", buckets=days, series=series,
                        label=lambda d: d.strftime("%b %d"), labelled=lambda d: d.day in (1, 8, 15, 22),
                        unit="US cents per day (UTC), rounded")


@never_cache
def spend_page(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("runs.view_run"):
        raise PermissionDenied
    today = datetime.now(tz=UTC).date()
    since = parse_date(request.GET.get("since", "") or "") or month_start()
    until = parse_date(request.GET.get("until", "") or "") or today + timedelta(days=1)
    if until <= since or (until - since).days > 366:
        since, until = month_start(), today + timedelta(days=1)
    team_param = request.GET.get("team", "")
    team = int(team_param) if team_param.isdigit() else None
    common: dict[str, Any] = {"user": request.user, "team": team, "since": since, "until": until}
    by_day = spend_rows(group_by=("team", "day"), **common)
    tables = {name: spend_rows(group_by=(name,), **common) for name in ("team", "member", "key", "model")}
    context = {
        **admin.site.each_context(request), "title": "Spend", "since": since, "until": until,
        "chart": spend_chart(by_day, since=since, until=until), "tables": tables,
        "teams": Team.objects.order_by("name"), "team": team,
        "total": sum((row["cost_usd"] or Decimal(0) for row in tables["team"]), Decimal(0)),
    }
    return TemplateResponse(request, "console/spend.html", context)
