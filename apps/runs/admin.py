"""The operator's console for runs and blocks.

Everything here is read-only: outputs, counters and usage are written by the engine alone. Operations
(cancel, reseed) are actions that call the same services as the API. Pages stay cheap on big tables:
no full result counts, no block inputs or outputs on list pages, filters whose choices come from
small tables.
"""

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from apps.failures.models import PipelineFailure, failure_state
from apps.runs.models import Attempt, Block, BlockStatus, Run, RunPass
from apps.runs.selectors import run_block_status_counts
from apps.runs.services.lifecycle import RunStateError, run_cancel
from apps.runs.services.reseed import run_reseed
from apps.runs.services.submission import SubmissionError

RECENT_FAILURES = 10
BAR_COLOURS = (("completed_blocks", "#5cb85c"), ("failed_blocks", "#d9534f"),
               ("canceled_blocks", "#999"))
STATUS_COLOURS = {"succeeded": "#5cb85c", "failed": "#d9534f", "canceled": "#999",
                  "claimed": "#f0ad4e", "pending": "#5bc0de"}


def render_progress_bar(run: Run) -> str:
    """A stacked bar (succeeded, failed, canceled) over the run's total, and the ended percentage."""
    total = run.total_blocks or 1
    segments = format_html_join(
        "", '<span style="display:inline-block;height:100%;width:{}%;background:{}"></span>',
        ((f"{100 * getattr(run, field) / total:.2f}", colour) for field, colour in BAR_COLOURS),
    )
    return format_html(
        '<span title="{} of {} blocks ended" style="display:inline-block;vertical-align:middle;'
        'width:8em;height:0.8em;background:#e5e5e5;border-radius:2px;overflow:hidden;'
        'white-space:nowrap;line-height:0">{}</span> {}%',
        run.terminal_blocks, run.total_blocks, segments, round(run.progress * 100),
    )


class OperatorActionsMixin:
    """Pages are view-only (no change form saves anything), yet staff with the model's change
    permission may run the operations, which go through the services."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        opts = self.model._meta  # type: ignore[attr-defined]
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")


class RunPassInline(admin.TabularInline):
    model = RunPass
    extra = 0
    can_delete = False
    fields = ["number", "scope", "filter", "model", "prompt_version", "selected_blocks",
              "prior_completed_blocks", "prior_failed_blocks", "prior_canceled_blocks", "prior_cost_usd",
              "created_at"]
    readonly_fields = fields
    verbose_name_plural = "passes (history)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(OperatorActionsMixin, admin.ModelAdmin):
    list_display = ["__str__", "owner", "status", "progress_bar", "counts", "cost", "model", "current_pass",
                    "created_at"]
    list_filter = ["status", "model", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name", "owner__username"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["cancel_runs", "reseed_failed", "reseed_all"]
    inlines = [RunPassInline]
    fieldsets = [
        (None, {"fields": ["id", "name", "owner", "key", "status", "paused_reason", "progress_bar",
                           "block_breakdown", "current_pass"]}),
        ("Recent failures", {"fields": ["recent_failures"]}),
        ("Model and prompt", {"fields": ["model", "system_prompt", "prompt_template", "prompt_version",
                                         "pipeline_version", "max_tokens", "temperature"]}),
        ("Engine", {"fields": ["max_attempts", "parallelism", "options", "idempotency_key"]}),
        ("Usage", {"fields": ["input_tokens", "output_tokens", "cache_creation_input_tokens",
                              "cache_read_input_tokens", "cost_usd"]}),
        ("Timings", {"fields": ["created_at", "started_at", "finished_at"]}),
    ]
    readonly_fields = ["progress_bar", "block_breakdown", "recent_failures"]

    @admin.display(description="progress")
    def progress_bar(self, run: Run) -> str:
        return render_progress_bar(run)

    @admin.display(description="succeeded / failed / canceled / total")
    def counts(self, run: Run) -> str:
        return (f"{run.completed_blocks} / {run.failed_blocks} / {run.canceled_blocks} / "
                f"{run.total_blocks}")

    @admin.display(description="cost", ordering="cost_usd")
    def cost(self, run: Run) -> str:
        return f"${run.cost_usd:.4f}"

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
            .values("pk", "block__uid", "error_code", "error_message", "failed_at", "resolved_at",
                    "next_retry_at", "replay_count")
            .order_by("-failed_at")[:RECENT_FAILURES]
        )
        if not rows:
            return "none"
        url = reverse("admin:failures_pipelinefailure_changelist")
        lines = format_html_join(
            "", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
                '<td>{}</td></tr>',
            ((reverse("admin:failures_pipelinefailure_change", args=[r["pk"]]), r["pk"],
              r["block__uid"] or "-", r["error_code"], r["error_message"][:200], r["replay_count"],
              failure_state(r)) for r in rows),
        )
        return format_html(
            '<table><thead><tr><th>failure</th><th>block</th><th>code</th><th>message</th>'
            '<th>replays</th><th>state</th></tr></thead><tbody>{}</tbody></table>'
            '<p><a href="{}?run__exact={}">all failures of this run</a></p>',
            lines, url, run.pk,
        )

    def _each(self, request: HttpRequest, queryset: QuerySet[Run], verb: str,
              operation: Callable[[Any], Any]) -> None:
        done = 0
        for run_id in queryset.values_list("pk", flat=True):
            try:
                operation(run_id)
            except (RunStateError, SubmissionError) as exc:
                self.message_user(request, f"Run {run_id} not {verb}: {exc}", messages.WARNING)
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} run(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Cancel selected runs", permissions=["operate"])
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        self._each(request, queryset, "canceled", lambda run_id: run_cancel(run_id=run_id))

    @admin.action(description="Reseed the failed blocks of selected runs (new pass)",
                  permissions=["operate"])
    def reseed_failed(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        self._each(request, queryset, "reseeded",
                   lambda run_id: run_reseed(run_id=run_id, scope="failed"))

    @admin.action(description="Reseed all blocks of selected runs (new pass)", permissions=["operate"])
    def reseed_all(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        self._each(request, queryset, "reseeded", lambda run_id: run_reseed(run_id=run_id, scope="all"))


class AttemptInline(admin.TabularInline):
    model = Attempt
    fk_name = "block"
    extra = 0
    can_delete = False
    fields = ["number", "pass_number", "outcome", "accepted", "http_status", "error_code",
              "error_message", "model", "latency_ms", "input_tokens", "output_tokens", "cost_usd",
              "request_id", "worker", "created_at", "output"]
    readonly_fields = fields
    ordering = ["created_at", "pk"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ErrorCodeFilter(admin.SimpleListFilter):
    """Choices from the dead-letter table (small), not a DISTINCT over every block."""

    title = "error code"
    parameter_name = "error_code"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        codes = PipelineFailure.objects.order_by("error_code").values_list("error_code", flat=True)
        return [(code, code) for code in codes.distinct()[:100]]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Block]) -> QuerySet[Block]:
        return queryset.filter(error_code=self.value()) if self.value() else queryset


class PromptVersionFilter(admin.SimpleListFilter):
    """Choices from runs and their passes (small), not a DISTINCT over every block."""

    title = "prompt version"
    parameter_name = "prompt_version"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        versions = set(Run.objects.values_list("prompt_version", flat=True).distinct()[:200])
        versions |= set(RunPass.objects.values_list("prompt_version", flat=True).distinct()[:200])
        return [(v, v) for v in sorted(versions)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Block]) -> QuerySet[Block]:
        return queryset.filter(prompt_version=self.value()) if self.value() else queryset


@admin.register(Block)
class BlockAdmin(OperatorActionsMixin, admin.ModelAdmin):
    list_display = ["uid", "run_link", "block_index", "status", "attempts", "error_code",
                    "prompt_version", "pass_number", "cost_usd", "finished_at"]
    list_filter = ["status", ErrorCodeFilter, PromptVersionFilter]
    list_select_related = ["run"]
    raw_id_fields = ["run"]
    show_full_result_count = False
    inlines = [AttemptInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Block]:
        blocks = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name == "runs_block_changelist":
            # List pages never need the (possibly long) texts.
            blocks = blocks.defer("input", "output")
        return blocks

    @admin.display(description="run", ordering="run")
    def run_link(self, block: Block) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:runs_run_change", args=[block.run_id]),
                           block.run)
