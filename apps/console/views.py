"""The landing page, and the admin's overview: what is running, what it costs, which keys are held
back, whether dead letters grow, and the last hour's throughput and refusals.

Each part of the overview is shown to those who may view the models it reads (runs, keys, failures),
as the admin's own pages are. Its list of open runs follows them: static/console/overview_live.js
fetches that part again (`overview/runs/`) every few seconds and swaps it in; without JavaScript the
page reloads itself."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.generic import RedirectView

from apps.console import selectors
from apps.console.charts import Series, stacked_bars
from apps.runs.models import Run
from apps.runs.reporting.live import run_progress
from apps.runs.selectors import run_status_text

# The overview's list of open runs is fetched again this often (static/console/overview_live.js);
# without JavaScript the whole page reloads at REFRESH_SECONDS.
POLL_SECONDS = 3
REFRESH_SECONDS = 15
GREEN, RED, GREY, ORANGE, BLUE, PURPLE = "#5cb85c", "#d9534f", "#999999", "#f0ad4e", "#5bc0de", "#9b59b6"
CODE_COLOURS = ("#d9534f", "#f0ad4e", "#9b59b6", "#5bc0de", "#8d6e63", "#999999")
CODES_CHARTED = 5

RUNS, KEYS, FAILURES = "runs.view_run", "keys.view_providerkey", "failures.view_pipelinefailure"


def home(request: HttpRequest) -> HttpResponse:
    """What this server is, and where its parts are: the admin, the API and its docs, health."""
    return TemplateResponse(request, "console/home.html",
                            {"version": settings.CONVEYOR["PIPELINE_VERSION"]})


favicon = RedirectView.as_view(url=static("console/favicon.svg"))


# --- the overview ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunRow:
    run: Run
    status: str
    progress: dict[str, Any]
    per_minute: int
    budget: str | None

    def share(self, count: int) -> str:
        """A part of the run's blocks as a bar segment's width, in percent."""
        return f"{100 * count / (self.run.total_blocks or 1):.2f}"

    @property
    def succeeded_width(self) -> str:
        return self.share(self.progress["counts"]["succeeded"])

    @property
    def failed_width(self) -> str:
        return self.share(self.progress["counts"]["failed"])

    @property
    def canceled_width(self) -> str:
        return self.share(self.progress["counts"]["canceled"])

    @property
    def worked(self) -> int:
        counts = self.progress["counts"]
        return counts["succeeded"] + counts["failed"]


def open_run_rows(*, now: datetime) -> tuple[list[RunRow], int]:
    """The newest open runs with their live snapshot (the one the run page and `runs follow` show),
    and how many runs are open in all."""
    runs = selectors.open_runs()
    shown = list(runs[:selectors.OPEN_RUNS_SHOWN])
    rates = selectors.blocks_per_minute(run_ids=[run.pk for run in shown], now=now)
    rows = [RunRow(run=run, status=run_status_text(run), progress=run_progress(run),
                   per_minute=rates.get(run.pk, 0), budget=(run.options or {}).get("max_cost_usd"))
            for run in shown]
    total = len(shown) if len(shown) < selectors.OPEN_RUNS_SHOWN else runs.count()
    return rows, total


def _minute(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%H:%M")


def _hour(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%H:00")


def _round_ten_minutes(moment: datetime) -> bool:
    return timezone.localtime(moment).minute % 10 == 0


def _round_four_hours(moment: datetime) -> bool:
    return timezone.localtime(moment).hour % 4 == 0


def throughput_charts(per_minute: selectors.PerMinute) -> list[str]:
    common: dict[str, Any] = {"buckets": per_minute.minutes, "label": _minute, "labelled": _round_ten_minutes,
              "unit": "per minute"}
    return [
        stacked_bars(title="Blocks answered, last hour", series=[
            Series("succeeded", GREEN, per_minute.succeeded), Series("failed", RED, per_minute.failed),
            Series("retried", ORANGE, per_minute.retried)], **common),
        stacked_bars(title="Calls refused for capacity, last hour", series=[
            Series("429 rate-limited", PURPLE, per_minute.throttled_429),
            Series("529 overloaded", BLUE, per_minute.overloaded_529)], **common),
    ]


def dead_letter_chart(dead: selectors.DeadLetters) -> str:
    charted = sorted(dead.per_hour, key=lambda code: -sum(dead.per_hour[code]))
    shown, rest = charted[:CODES_CHARTED], charted[CODES_CHARTED:]
    series = [Series(code, CODE_COLOURS[i], dead.per_hour[code]) for i, code in enumerate(shown)]
    if rest:
        other = [sum(dead.per_hour[code][i] for code in rest) for i in range(len(dead.hours))]
        series.append(Series("other codes", CODE_COLOURS[-1], other))
    return stacked_bars(title="Dead letters recorded, last 24 hours", buckets=dead.hours, series=series,
                        label=_hour, labelled=_round_four_hours, unit="per hour, by error code")


def _may(request: HttpRequest, permission: str) -> bool:
    return request.user.has_perm(permission)


@never_cache
def overview(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    context: dict[str, Any] = {
        **admin.site.each_context(request), "title": "Overview", "now": now,
        "poll_seconds": POLL_SECONDS, "refresh_seconds": REFRESH_SECONDS,
        "may_runs": _may(request, RUNS), "may_keys": _may(request, KEYS),
        "may_failures": _may(request, FAILURES),
    }
    if context["may_runs"]:
        rows, total = open_run_rows(now=now)
        per_minute = selectors.per_minute(now=now)
        context.update(rows=rows, open_total=total, spend=selectors.spend_by_model(now=now),
                       per_minute=per_minute, throughput_charts=throughput_charts(per_minute),
                       recent_runs=selectors.recent_ended_runs(),
                       runs_url=reverse("admin:overview_runs"))
    if context["may_keys"]:
        context["keys"] = selectors.keys_and_lanes()
    if context["may_failures"]:
        dead = selectors.dead_letters(now=now)
        context.update(dead=dead, dead_letter_chart=dead_letter_chart(dead))
    return TemplateResponse(request, "console/overview.html", context)


@never_cache
def overview_runs(request: HttpRequest) -> HttpResponse:
    """The overview's open runs alone: what overview_live.js swaps in every few seconds."""
    if not _may(request, RUNS):
        raise PermissionDenied
    now = timezone.now()
    rows, total = open_run_rows(now=now)
    return TemplateResponse(request, "console/_open_runs.html", {"rows": rows, "open_total": total,
                                                                 "now": now})
