"""Runs in the operator's console.

Operations (cancel, resume, raise the budget, reseed) are actions, and buttons on a run's page, that
call the same services as the API. A run's page opens with what it is doing and what can be done
(templates/admin/runs/run/summary.html): status and why it waits, progress, rate, cost against its
budget, what caching, packing and batch mode saved, and the operations (cancel, resume, set the budget,
reseed, download its results and failures); its prompt is folded away below. While the run is active
that summary follows it live from the run's progress stream (runs/{id}/events/, by
static/runs/run_live.js), and the page reloads once when the run settles (every few seconds without
JavaScript).
"""

import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import F, IntegerField, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from rest_framework.renderers import JSONRenderer

from apps.audit.services import actor_from_admin
from apps.core.admin import OperatorActionsMixin, moment, pretty_json, short_id
from apps.core.errors import InvalidInput, StateConflict
from apps.core.formatting import format_usd
from apps.failures.models import PipelineFailure, failure_state
from apps.failures.selectors import failures_list
from apps.failures.serializers import FailureOutputSerializer
from apps.runs.auditing import run_audited
from apps.runs.models import BlockStatus, PassScope, PausedCause, Run, RunPass, RunStatus
from apps.runs.reporting.costs import NO_HIT_AFTER_CALLS, CostReport, run_cost_report
from apps.runs.reporting.exports import CONTENT_TYPES, failures_export, jsonl_chunks, results_export
from apps.runs.reporting.live import run_progress
from apps.runs.selectors import run_block_status_counts, run_keys_usage, run_models_usage, run_status_text
from apps.runs.services.deletion import run_delete
from apps.runs.services.lifecycle import run_cancel, run_resume, run_set_budget
from apps.runs.services.reseed import run_reseed
from apps.runs.transitions import RUN_CANCELABLE, RUN_RESEEDABLE

RECENT_FAILURES = 10
# Without JavaScript, an active run's page reloads itself this often instead of following the stream.
REFRESH_SECONDS = 5
# A run's page follows the run while it can still change by itself.
RUN_REFRESHING = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.CANCELING)
BUDGET_TEMPLATE = "admin/runs/run/budget.html"
CONFIRM_TEMPLATE = "admin/runs/run/confirm.html"
# The paused cause in a list column; the run's page says it in full, with the reason.
PAUSED_SHORT: dict[str, str] = {
    PausedCause.KEY_REJECTED: "key rejected",
    PausedCause.KEY_BLOCKED: "key blocked",
    PausedCause.KEY_DELETED: "key deleted",
    PausedCause.KEY_UNSAFE: "key unsafe",
    PausedCause.BUDGET: "by its budget",
    PausedCause.TEAM_BUDGET: "by its team's limit",
    PausedCause.REQUESTED: "by a person",
}
BAR_COLOURS = (("completed_blocks", "#5cb85c"), ("failed_blocks", "#d9534f"),
               ("canceled_blocks", "#999"))
STATUS_COLOURS = {"succeeded": "#5cb85c", "failed": "#d9534f", "canceled": "#999",
                  "claimed": "#f0ad4e", "pending": "#5bc0de"}


def render_progress_bar(run: Run) -> str:
    """A stacked bar (succeeded, failed, canceled) over the run's total. The figure beside it counts
    the blocks that were worked (succeeded or failed), so a run canceled after 16 of 100 reads 16%,
    "84 canceled", not 100%."""
    total = run.total_blocks or 1
    segments = format_html_join(
        "", '<span style="display:inline-block;height:100%;width:{}%;background:{}"></span>',
        ((f"{100 * getattr(run, field) / total:.2f}", colour) for field, colour in BAR_COLOURS),
    )
    worked = run.completed_blocks + run.failed_blocks
    extra = "".join(f", {n} {word}" for n, word in ((run.failed_blocks, "failed"),
                                                    (run.canceled_blocks, "canceled")) if n)
    return format_html(
        '<span style="white-space:nowrap"><span title="{} of {} blocks worked, {} canceled" '
        'style="display:inline-block;vertical-align:middle;width:5em;height:0.8em;background:#e5e5e5;'
        'border-radius:2px;overflow:hidden;white-space:nowrap;line-height:0">{}</span> {}% · {}/{}{}</span>',
        worked, run.total_blocks, run.canceled_blocks, segments, int(100 * worked / total), worked,
        run.total_blocks, extra,
    )


class BudgetForm(forms.Form):
    max_cost_usd = forms.DecimalField(
        label="New budget (USD)", required=False, max_digits=12, decimal_places=4,
        min_value=Decimal("0.0001"),
        help_text="Empty removes the budget. A run paused by its budget resumes if what the new budget "
                  "leaves can pay for its next block's worst case; otherwise its reason says how much "
                  "that is.",
    )


class ReseedForm(forms.Form):
    scope = forms.ChoiceField(
        choices=[(PassScope.FAILED.value, "the failed blocks"), (PassScope.ALL.value, "every block")],
        initial=PassScope.FAILED.value, widget=forms.RadioSelect,
        help_text="The blocks chosen go back to work with their attempts refilled, as a new pass with its "
                  "own record; the others keep their results.",
    )


class RunPassInline(admin.TabularInline):
    model = RunPass
    extra = 0
    can_delete = False
    fields = ["number", "scope", "filter", "model", "prompt_version", "selected_blocks", "created_at",
              "finished_at", "ended_status", "completed_blocks", "failed_blocks", "canceled_blocks",
              "cost_usd"]
    readonly_fields = fields  # type: ignore[assignment]  # (the stubs allow field groups in `fields`)
    verbose_name_plural = "passes (history)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PausedCauseFilter(admin.SimpleListFilter):
    title = "paused because"
    parameter_name = "paused_cause"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(PAUSED_SHORT.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Run]) -> QuerySet[Run]:
        return queryset.filter(paused_cause=self.value()) if self.value() else queryset


def cache_suspect(runs: QuerySet[Run]) -> QuerySet[Run]:
    """Runs with caching on and no cache read although more than a handful of calls' worth of blocks
    were worked: the list's cheap reading of the run's counters (one call per pack_size blocks; a
    pack of up to 50). The run's page says exactly, from its calls (apps.runs.reporting.costs.CacheStats)."""
    worked = F("completed_blocks") + F("failed_blocks")
    pack = Cast(KeyTextTransform("pack_size", "options"), IntegerField())
    return runs.filter(options__cache=True, cache_read_input_tokens=0).annotate(
        worked=worked, pack=Coalesce(pack, 1)).filter(worked__gt=NO_HIT_AFTER_CALLS * F("pack"))


class CachingFilter(admin.SimpleListFilter):
    title = "caching"
    parameter_name = "caching"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("not_hitting", "on, but no cache read"), ("warned", "warned at create")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Run]) -> QuerySet[Run]:
        if self.value() == "not_hitting":
            return cache_suspect(queryset)
        if self.value() == "warned":
            return queryset.exclude(warnings=[])
        return queryset


@admin.register(Run)
class RunAdmin(OperatorActionsMixin, admin.ModelAdmin):
    list_display = ["run", "owner", "status_display", "progress_bar", "cost", "created"]
    list_filter = ["status", PausedCauseFilter, CachingFilter, "model",
                   ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name", "owner__username"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["cancel_runs", "resume_runs", "set_budget", "reseed_failed", "reseed_all", "delete_runs"]
    inlines = [RunPassInline]
    # Under the summary at the top of the page (summary.html): the run's details, its prompt folded.
    fieldsets = [
        (None, {"fields": ["id", "name", "owner", "key", "warnings_list", "block_breakdown",
                           "current_pass"]}),
        ("Recent failures", {"fields": ["recent_failures"]}),
        ("Usage", {"fields": ["cost", "savings_table", "cache_hit_rate", "input_tokens", "output_tokens",
                              "cache_creation_input_tokens", "cache_read_input_tokens"]}),
        ("Keys and models", {"fields": ["keys_table", "models_table", "fallback_models"]}),
        ("Engine", {"fields": ["options_list", "max_attempts", "parallelism", "priority", "budget",
                               "idempotency_key", "webhook_url"]}),
        ("Model and prompt", {"classes": ["collapse"],
                              "fields": ["model", "max_tokens", "temperature", "system_prompt",
                                         "prompt_template", "output_schema_display", "prompt_version",
                                         "pipeline_version"]}),
        ("Timings", {"fields": ["created_at", "started_at", "finished_at"]}),
    ]
    readonly_fields = ["warnings_list", "progress_bar", "block_breakdown", "recent_failures",
                       "budget", "cost", "savings_table", "cache_hit_rate", "options_list",
                       "output_schema_display", "keys_table", "models_table"]
    change_form_template = "admin/runs/run/change_form.html"

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/resume/", wrap(self.resume_view), name="runs_run_resume"),
            path("<path:object_id>/budget/", wrap(self.budget_view), name="runs_run_budget"),
            path("<path:object_id>/cancel/", wrap(self.cancel_view), name="runs_run_cancel"),
            path("<path:object_id>/reseed/", wrap(self.reseed_view), name="runs_run_reseed"),
            path("<path:object_id>/results.jsonl", wrap(self.results_view), {"fmt": "jsonl"},
                 name="runs_run_results"),
            path("<path:object_id>/results.csv", wrap(self.results_view), {"fmt": "csv"},
                 name="runs_run_results_csv"),
            path("<path:object_id>/results.parquet", wrap(self.results_view), {"fmt": "parquet"},
                 name="runs_run_results_parquet"),
            path("<path:object_id>/failures.jsonl", wrap(self.failures_view), name="runs_run_failures"),
            path("<path:object_id>/failures.csv", wrap(self.failures_table_view), {"fmt": "csv"},
                 name="runs_run_failures_csv"),
            path("<path:object_id>/failures.parquet", wrap(self.failures_table_view), {"fmt": "parquet"},
                 name="runs_run_failures_parquet"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict | None = None) -> HttpResponse:
        run = self.get_object(request, unquote(object_id))
        context = {
            **(extra_context or {}),
            "can_operate": self.has_operate_permission(request),
            "is_paused": run is not None and run.status == RunStatus.PAUSED,
            "live": run is not None and run.status in RUN_REFRESHING,
            "refresh_seconds": REFRESH_SECONDS,
            "summary": None if run is None else self.summary(run),
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    def summary(self, run: Run) -> dict[str, Any]:
        """What the top of a run's page shows (summary.html): the live snapshot that the progress stream
        sends (so the page and the stream agree), the money, and which operations its state allows."""
        progress = run_progress(run)
        counts = progress["counts"]
        total = run.total_blocks or 1
        report = self._cost_report(run)
        budget = (run.options or {}).get("max_cost_usd")
        return {
            "status": run_status_text(run),
            "progress": progress,
            "worked": counts["succeeded"] + counts["failed"],
            "open": max(0, counts["total"] - counts["succeeded"] - counts["failed"] - counts["canceled"]),
            "percent": int(100 * (counts["succeeded"] + counts["failed"]) / total),
            "widths": {name: f"{100 * counts[name] / total:.2f}"
                       for name in ("succeeded", "failed", "canceled")},
            "events_url": reverse("run-events", args=[run.pk]),
            "cost": format_usd(progress["cost_usd"]),
            "budget": "none" if budget is None else
                      f"{format_usd(budget)} ({format_usd(Decimal(str(budget)) - run.cost_usd)} left)",
            "savings": report.savings,
            "saved": {"caching": format_usd(report.savings.caching_saved_usd),
                      "packing": format_usd(report.savings.packing_saved_usd),
                      "batch": format_usd(report.savings.batch_saved_usd)},
            "hit_rate": "-" if report.cache.hit_rate is None else f"{100 * report.cache.hit_rate:.1f}%",
            "packed": (run.options or {}).get("pack_size", 1) > 1,
            "took": self._took(run),
            "cache": report.cache,
            "can_cancel": run.status in RUN_CANCELABLE,
            "can_reseed": run.status in RUN_RESEEDABLE,
            "has_failures": PipelineFailure.objects.filter(run_id=run.pk).exists(),
        }

    # --- columns ----------------------------------------------------------------------------------

    @admin.display(description="run", ordering="created_at")
    def run(self, run: Run) -> str:
        """Name and short id, and below them the model (and the pass, after a reseed): one column."""
        name = run.name if len(run.name) <= 28 else f"{run.name[:27]}…"
        below = run.model + (f" · pass {run.current_pass}" if run.current_pass > 1 else "")
        if run.warnings:
            below += " · ⚠ " + ", ".join(w.get("code", "") for w in run.warnings)
        return format_html('<span style="white-space:nowrap" title="{}">{} {}</span><br>'
                           '<small style="color:var(--body-quiet-color);white-space:nowrap">{}</small>',
                           run.name, name, short_id(run.pk), below)

    @admin.display(description="status", ordering="status")
    def status_display(self, run: Run) -> str:
        if run.status != RunStatus.PAUSED:
            return run_status_text(run)
        cause = PAUSED_SHORT.get(run.paused_cause, "")
        return format_html('<span style="white-space:nowrap" title="{}"><strong>paused</strong>: {}</span>',
                           run.paused_reason, cause or "see its page")

    @admin.display(description="output schema")
    def output_schema_display(self, run: Run) -> str:
        """The JSON Schema each answer must be a document of (structured outputs), or free text."""
        return pretty_json(run.output_schema) if run.output_schema else "- (free text)"

    @admin.display(description="progress")
    def progress_bar(self, run: Run) -> str:
        return render_progress_bar(run)

    @admin.display(description="cost", ordering="cost_usd")
    def cost(self, run: Run) -> str:
        return format_usd(run.cost_usd)

    @staticmethod
    def _cost_report(run: Run) -> CostReport:
        """One aggregate of the run's usage per page, however many fields show it."""
        report = getattr(run, "_cost_report", None)
        if report is None:
            report = run._cost_report = run_cost_report(run)  # type: ignore[attr-defined]
        return report

    @admin.display(description="warnings")
    def warnings_list(self, run: Run) -> str:
        warnings = self._cost_report(run).warnings
        if not warnings:
            return "none"
        return format_html_join("", '<p style="color:#b45f06;margin:0 0 .3em"><strong>{}</strong>: {}</p>',
                                ((w.get("code", ""), w.get("message", "")) for w in warnings))

    @admin.display(description="savings")
    def savings_table(self, run: Run) -> str:
        savings = self._cost_report(run).savings
        rows = [("this run", savings.cost_usd, None),
                ("without caching", savings.uncached_usd, ("caching saved", savings.caching_saved_usd)),
                ("without caching or packing", savings.unpacked_uncached_usd,
                 ("packing saved", savings.packing_saved_usd)),
                ("at live prices", savings.live_usd,
                 ("batch mode saved", savings.batch_saved_usd) if savings.batch else None)]
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (label, format_usd(amount), f"{saved[0]} {format_usd(saved[1])}" if saved else "")
            for label, amount, saved in rows))
        note = "" if savings.packing_measured else format_html(
            "<p>{}</p>", "Nothing was cached, so packing's saving cannot be measured from the usage.")
        return format_html("<table><tbody>{}</tbody></table>{}", body, note)

    @admin.display(description="keys")
    def keys_table(self, run: Run) -> str:
        """The run's pool: each key's state, calls, blocks answered, spend and cache writes."""
        head = format_html("<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
                           "key", "state", "calls", "answered", "spent", "cache writes (tokens)")
        body = format_html_join("", "<tr><td>{} …{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                                "<td>{}</td></tr>", (
            (row["label"], row["suffix"],
             row["state"] + (f": {row['left_reason']}" if row["left_reason"] else ""),
             row["calls"], row["blocks_answered"], format_usd(row["cost_usd"]),
             row["cache_creation_input_tokens"])
            for row in run_keys_usage(run=run)))
        return format_html("<table><thead>{}</thead><tbody>{}</tbody></table>", head, body)

    @admin.display(description="models")
    def models_table(self, run: Run) -> str:
        """Per model called: calls, blocks answered, spend at its own prices."""
        head = format_html("<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
                           "model", "calls", "answered", "spent")
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (row["model"], row["calls"], row["blocks_answered"], format_usd(row["cost_usd"]))
            for row in run_models_usage(run=run)))
        return format_html("<table><thead>{}</thead><tbody>{}</tbody></table>", head, body)

    @admin.display(description="cache hit rate")
    def cache_hit_rate(self, run: Run) -> str:
        cache = self._cost_report(run).cache
        rate = "-" if cache.hit_rate is None else f"{100 * cache.hit_rate:.1f}%"
        text = format_html("{} ({} of {} cacheable tokens read; caching {})", rate,
                           f"{cache.read_tokens:,}", f"{cache.cacheable_tokens:,}",
                           "on" if cache.caching else "off")
        if cache.not_hitting:
            return format_html('<strong style="color:#b45f06">caching on, but no cache read after {} '
                               "calls</strong> · {}", cache.calls_after_first, text)
        return text

    @admin.display(description="budget")
    def budget(self, run: Run) -> str:
        value = (run.options or {}).get("max_cost_usd")
        return format_usd(value) if value is not None else "none"

    @admin.display(description="options")
    def options_list(self, run: Run) -> str:
        """The run's options in words, not as JSON."""
        options = run.options or {}
        caching = f"on (the prefix kept {options.get('cache_ttl', '5m')})" if options.get("cache") else "off"
        chosen = run.mode != run.effective_mode or run.mode_reason
        mode = run.effective_mode + (f" (asked: {run.mode}; {run.mode_reason})" if chosen else "")
        items = [("mode", mode), ("caching", caching),
                 ("packing", f"{options['pack_size']} blocks per call" if options.get("pack_size", 1) > 1
                  else "off (one block per call)"),
                 ("streaming", "on" if options.get("stream") else "off"),
                 ("budget", self.budget(run))]
        if run.deadline:
            items.append(("deadline", moment(run.deadline)))
        return format_html('<ul class="run-options">{}</ul>',
                           format_html_join("", "<li><strong>{}</strong>: {}</li>", items))

    @admin.display(description="created", ordering="created_at")
    def created(self, run: Run) -> str:
        return moment(run.created_at)

    @admin.display(description="blocks by state")
    def block_breakdown(self, run: Run) -> str:
        counts = run_block_status_counts(run_id=run.pk)
        url = reverse("admin:runs_block_changelist")
        return format_html_join(
            " ", '<a href="{}?run={}&status__exact={}" style="color:{}">{}: {}</a>',
            ((url, run.pk, status, STATUS_COLOURS[status], BlockStatus(status).label, counts[status])
             for status in BlockStatus.values),
        )

    @admin.display(description="recent failures")
    def recent_failures(self, run: Run) -> str:
        rows = list(
            PipelineFailure.objects.filter(run_id=run.pk)
            .values("pk", "block_id", "block__uid", "error_code", "error_message", "failed_at",
                    "resolved_at", "next_retry_at", "replay_count")
            .order_by("-failed_at")[:RECENT_FAILURES]
        )
        if not rows:
            return "none"
        url = reverse("admin:failures_pipelinefailure_changelist")
        lines = format_html_join(
            "", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
                '<td>{}</td></tr>',
            ((reverse("admin:failures_pipelinefailure_change", args=[r["pk"]]), r["pk"], self._block_link(r),
              r["error_code"], r["error_message"][:200], r["replay_count"], failure_state(r)) for r in rows),
        )
        return format_html(
            '<table><thead><tr><th>failure</th><th>block</th><th>code</th><th>message</th>'
            '<th>replays</th><th>state</th></tr></thead><tbody>{}</tbody></table>'
            '<p><a href="{}?run__exact={}">all failures of this run</a></p>',
            lines, url, run.pk,
        )

    @staticmethod
    def _took(run: Run) -> str:
        """How long an ended run took, and its pace: "took 3m 12s, 3.1 blocks/s"."""
        if run.finished_at is None or run.started_at is None:
            return ""
        seconds = max((run.finished_at - run.started_at).total_seconds(), 0.001)
        minutes, rest = divmod(int(seconds), 60)
        length = f"{minutes}m {rest}s" if minutes else f"{seconds:.1f}s"
        return f"took {length}, {run.terminal_blocks / seconds:.1f} blocks/s"

    @staticmethod
    def _block_link(row: Mapping[str, Any]) -> str:
        if row["block_id"] is None:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:runs_block_change", args=[row["block_id"]]),
                           row["block__uid"])

    # --- operations -------------------------------------------------------------------------------

    def _set_budget(self, request: HttpRequest, run_id: Any, budget: Decimal | None) -> None:
        """run_set_budget, saying so when the new budget still cannot pay for the run's next block."""
        run = run_set_budget(run_id=run_id, max_cost_usd=budget)
        if run.status == RunStatus.PAUSED and run.paused_cause == PausedCause.BUDGET:
            self.message_user(request, f"Run {run_id} still {run.paused_reason}", messages.WARNING)

    def _each(self, request: HttpRequest, queryset: QuerySet[Run], verb: str,
              operation: Callable[[Any], Any], *, audit: str) -> None:
        """The operation on each run, each recorded in the audit trail as `run.<audit>` (with the
        operation, in one transaction: a refused one records nothing)."""
        done = 0
        actor = actor_from_admin(request)
        for run_id in queryset.values_list("pk", flat=True):
            try:
                run_audited(actor, audit, run_id, partial(self._ran, operation, run_id))
            except (StateConflict, InvalidInput) as exc:
                self.message_user(request, f"Run {run_id} not {verb}: {exc}", messages.WARNING)
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} run(s) {verb}.", messages.SUCCESS)

    @staticmethod
    def _ran(operation: Callable[[Any], Any], run_id: Any) -> Run:
        operation(run_id)
        return Run.objects.get(pk=run_id)

    @admin.action(description="Cancel selected runs", permissions=["operate"])
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        self._each(request, queryset, "canceled", lambda run_id: run_cancel(run_id=run_id),
                   audit="cancel")

    @admin.action(description="Resume selected paused runs", permissions=["operate"])
    def resume_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        self._each(request, queryset, "resumed", lambda run_id: run_resume(run_id=run_id),
                   audit="resume")

    @admin.action(description="Set the budget of selected runs…", permissions=["operate"])
    def set_budget(self, request: HttpRequest, queryset: QuerySet[Run]) -> TemplateResponse | None:
        form = BudgetForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            budget = form.cleaned_data["max_cost_usd"]
            self._each(request, queryset, "given the new budget",
                       lambda run_id: self._set_budget(request, run_id, budget), audit="budget")
            return None
        return self._budget_page(request, form, queryset, action="set_budget")

    @admin.action(description="Reseed the failed blocks of selected runs (new pass)",
                  permissions=["operate"])
    def reseed_failed(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        self._each(request, queryset, "reseeded",
                   lambda run_id: run_reseed(run_id=run_id, scope="failed"), audit="reseed")

    @admin.action(description="Reseed all blocks of selected runs (new pass)", permissions=["operate"])
    def reseed_all(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        self._each(request, queryset, "reseeded", lambda run_id: run_reseed(run_id=run_id, scope="all"),
                   audit="reseed")

    def has_erase_permission(self, request: HttpRequest) -> bool:
        """Deleting runs (their rows go in the background) needs the model's delete permission; the
        admin's own delete (Django's collector, one long transaction) stays off."""
        return request.user.has_perm("runs.delete_run")

    @admin.action(description="Delete selected ended runs (in the background)", permissions=["erase"])
    def delete_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        self._each(request, queryset, "deleted", lambda run_id: run_delete(run_id=run_id), audit="delete")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Run]:
        # A run being deleted is gone at once, here as in the API.
        return super().get_queryset(request).filter(deleting_at__isnull=True)

    def resume_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        run = self._operable(request, object_id)
        self._each(request, self.get_queryset(request).filter(pk=run.pk), "resumed",
                   lambda run_id: run_resume(run_id=run_id), audit="resume")
        return HttpResponseRedirect(reverse("admin:runs_run_change", args=[run.pk]))

    def budget_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        run = self._operable(request, object_id)
        runs = self.get_queryset(request).filter(pk=run.pk)
        current = (run.options or {}).get("max_cost_usd")
        form = BudgetForm(request.POST if request.method == "POST" else None,
                          initial={"max_cost_usd": current})
        if form.is_bound and form.is_valid():
            budget = form.cleaned_data["max_cost_usd"]
            self._each(request, runs, "given the new budget",
                       lambda run_id: self._set_budget(request, run_id, budget), audit="budget")
            return HttpResponseRedirect(reverse("admin:runs_run_change", args=[run.pk]))
        return self._budget_page(request, form, runs)

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Asks first (pending blocks are canceled at once, calls in flight finish), then cancels."""
        run = self._operable(request, object_id)
        if request.method == "POST":
            self._each(request, self.get_queryset(request).filter(pk=run.pk), "canceled",
                       lambda run_id: run_cancel(run_id=run_id), audit="cancel")
            return HttpResponseRedirect(reverse("admin:runs_run_change", args=[run.pk]))
        open_blocks = run.total_blocks - run.terminal_blocks
        return self._confirm_page(
            request, run, title="Cancel this run?", button="Cancel the run", danger=True,
            text=f"Its {open_blocks} open block(s) are canceled: the pending ones now, those in calls when "
                 "their answers come (they are recorded and billed). Its results so far stay. A reseed can "
                 "run the canceled blocks later, as a new pass.")

    def reseed_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        run = self._operable(request, object_id)
        form = ReseedForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            scope = form.cleaned_data["scope"]
            self._each(request, self.get_queryset(request).filter(pk=run.pk), "reseeded",
                       lambda run_id: run_reseed(run_id=run_id, scope=scope), audit="reseed")
            return HttpResponseRedirect(reverse("admin:runs_run_change", args=[run.pk]))
        return self._confirm_page(
            request, run, title="Reseed this run", button="Start the new pass", form=form,
            text=f"{run.failed_blocks} failed, {run.completed_blocks} succeeded, {run.canceled_blocks} "
                 "canceled. With another model or prompt: manage.py runs reseed, or the API.")

    def results_view(self, request: HttpRequest, object_id: str, fmt: str) -> StreamingHttpResponse:
        """Every block's result in block order, as JSONL, CSV or Parquet: the API's results/ and
        `manage.py export` (apps/runs/reporting/exports.py)."""
        run = self._viewable(request, object_id)
        return self._download(results_export(run, fmt), f"run-{run.pk}-results.{fmt}", CONTENT_TYPES[fmt])

    def failures_table_view(self, request: HttpRequest, object_id: str, fmt: str) -> StreamingHttpResponse:
        """The run's dead-letter rows as a table (CSV or Parquet), with every metadata key as a column:
        the API's runs/{id}/failures/ and `manage.py export --failures`."""
        run = self._viewable(request, object_id)
        return self._download(failures_export(run, fmt), f"run-{run.pk}-failures.{fmt}", CONTENT_TYPES[fmt])

    def failures_view(self, request: HttpRequest, object_id: str) -> StreamingHttpResponse:
        """The run's dead-letter rows as JSONL, newest first, as GET /api/v1/failures/?run= shows them."""
        run = self._viewable(request, object_id)
        rows = failures_list(user=None, run=run.pk).iterator(chunk_size=500)
        # Through the API's JSON encoding (ids, moments), so each line is what the API answers.
        lines = (json.loads(JSONRenderer().render(FailureOutputSerializer(row).data)) for row in rows)
        return self._download(jsonl_chunks(lines), f"run-{run.pk}-failures.jsonl", CONTENT_TYPES["jsonl"])

    @staticmethod
    def _download(chunks: Any, filename: str, content_type: str) -> StreamingHttpResponse:
        response = StreamingHttpResponse(chunks, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def _viewable(self, request: HttpRequest, object_id: str) -> Run:
        run = self.get_object(request, unquote(object_id))
        if run is None:
            raise Http404("no such run")
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        return run

    def _confirm_page(self, request: HttpRequest, run: Run, *, title: str, button: str, text: str,
                      danger: bool = False, form: forms.Form | None = None) -> TemplateResponse:
        context = {**self.admin_site.each_context(request), "title": title, "opts": self.opts,
                   "original": run, "text": text, "button": button, "danger": danger, "form": form}
        return TemplateResponse(request, CONFIRM_TEMPLATE, context)

    def _operable(self, request: HttpRequest, object_id: str) -> Run:
        if not self.has_operate_permission(request):
            raise PermissionDenied
        run = self.get_object(request, unquote(object_id))
        if run is None:
            raise Http404("no such run")
        return run

    def _budget_page(self, request: HttpRequest, form: BudgetForm, queryset: QuerySet[Run],
                     action: str = "") -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Set the budget",
            "opts": self.opts,
            "form": form,
            "rows": [(run, format_usd(run.cost_usd), self.budget(run)) for run in queryset[:200]],
            "count": queryset.count(),
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "selected_ids": [str(pk) for pk in queryset.values_list("pk", flat=True)],
        }
        return TemplateResponse(request, BUDGET_TEMPLATE, context)
