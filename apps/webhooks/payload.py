"""The `run.finished` event: what a receiver learns when a run's pass ends, in the field names of the
run detail API (GET /api/v1/runs/{id}/), so one client reads both. Counts and cost are those recorded
on the pass when it ended (apps.runs.models.RunPass), which no later pass rewrites."""

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.urls import reverse

from apps.runs.models import Run, RunPass
from apps.runs.reporting.exports import FORMATS

EVENT_TYPE = "run.finished"
TEAM_SPEND_EVENT = "team.spend"


def _moment(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _usd(value: Decimal | None) -> str | None:
    return None if value is None else format(Decimal(value), "f")


def _link(name: str, run: Run, query: str = "") -> str:
    return f"{settings.PUBLIC_BASE_URL}{reverse(name, args=[str(run.pk)])}{query}"


def result_links(run: Run) -> dict[str, Any]:
    """Where the run and its results are read (with the API's token): the results and the failures in
    each export format (every block's metadata is in them), absolute under PUBLIC_BASE_URL."""
    return {
        "run": _link("run-detail", run),
        "results": {fmt: _link("run-results", run, f"?format={fmt}") for fmt in FORMATS},
        "failures": {fmt: _link("run-failures", run, f"?format={fmt}") for fmt in FORMATS},
    }


def run_finished_event(*, run: Run, run_pass: RunPass | None, pass_number: int, status: str
                       ) -> dict[str, Any]:
    ended = run_pass.finished_at if run_pass is not None and run_pass.finished_at else run.finished_at
    kept = run_pass if run_pass is not None and run_pass.completed_blocks is not None else None
    succeeded = kept.completed_blocks if kept is not None else run.completed_blocks
    failed = kept.failed_blocks if kept is not None else run.failed_blocks
    canceled = kept.canceled_blocks if kept is not None else run.canceled_blocks
    cost = kept.cost_usd if kept is not None and kept.cost_usd is not None else run.cost_usd
    started = run_pass.created_at if run_pass is not None and pass_number > 1 else run.started_at
    duration = round((ended - started).total_seconds(), 3) if ended and started else None
    return {
        "type": EVENT_TYPE,
        "timestamp": _moment(ended),
        "data": {
            "run_id": str(run.pk),
            "name": run.name,
            "model": run.model,
            "pass_number": pass_number,
            "status": status,
            "counts": {"total": run.total_blocks, "succeeded": succeeded, "failed": failed,
                       "canceled": canceled,
                       "remaining": run.total_blocks - (succeeded or 0) - (failed or 0) - (canceled or 0)},
            "usage": {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens,
                      "cache_creation_input_tokens": run.cache_creation_input_tokens,
                      "cache_read_input_tokens": run.cache_read_input_tokens},
            "cost_usd": _usd(cost),
            "created_at": _moment(run.created_at),
            "started_at": _moment(started),
            "finished_at": _moment(ended),
            "duration_seconds": duration,
            "links": result_links(run),
        },
    }


def encode(event: dict[str, Any]) -> str:
    """The body as sent: compact JSON, key order as built (the stored text is what is signed)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def team_spend_event(*, team_id: int, team_name: str, member: str | None, level: int, spent_usd: Decimal,
                     limit_usd: Decimal, period: str, window_days: int | None, period_start: datetime,
                     at: datetime) -> dict[str, Any]:
    """`team.spend`: a team's limit (or, with `member`, a member's limit in it) reached 80 or 100
    percent of itself in the period; at 100 its runs pause (or have paused) with cause team_budget."""
    return {
        "type": TEAM_SPEND_EVENT,
        "timestamp": _moment(at),
        "data": {
            "team_id": team_id, "team": team_name, "member": member, "threshold_percent": level,
            "spent_usd": _usd(spent_usd), "limit_usd": _usd(limit_usd), "period": period,
            "window_days": window_days, "period_start": _moment(period_start),
        },
    }
