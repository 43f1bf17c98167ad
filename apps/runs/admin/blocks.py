"""Blocks in the operator's console: read-only, with each block's attempts (every call, every pass).
List pages never load a block's input or output, and filter choices come from small tables."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from apps.core.admin import OperatorActionsMixin, cut, moment, nowrap, short_id
from apps.core.formatting import format_usd
from apps.failures.models import PipelineFailure
from apps.runs.models import Attempt, Block, Run, RunPass


class AttemptInline(admin.TabularInline):
    model = Attempt
    fk_name = "block"
    extra = 0
    can_delete = False
    fields = ["number", "pass_number", "outcome", "accepted", "http_status", "error_code",
              "error_message", "model", "latency_ms", "input_tokens", "output_tokens", "cost_usd",
              "request_id", "worker", "created_at", "reply"]
    readonly_fields = fields  # type: ignore[assignment]  # (the stubs allow field groups in `fields`)
    ordering = ["created_at", "pk"]

    @admin.display(description="output")
    def reply(self, attempt: Attempt) -> str:
        """An output is stored once: the block holds its current result, the attempt only a result a
        later pass superseded."""
        block = attempt.block
        current = (attempt.output is None and attempt.accepted and attempt.outcome == "succeeded"
                   and attempt.pass_number == block.pass_number)
        text = block.output if current else attempt.output
        return text if text is not None else "-"

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
    list_display = ["uid_column", "run_link", "index", "status", "attempts", "error_code", "error",
                    "pass_column", "cost", "finished"]
    list_filter = ["status", ErrorCodeFilter, PromptVersionFilter]
    list_select_related = ["run"]
    raw_id_fields = ["run"]
    show_full_result_count = False
    inlines = [AttemptInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Block]:
        blocks = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name == "runs_block_changelist":
            # List pages never need the (possibly long) texts.
            blocks = blocks.defer("input", "output", "run__system_prompt", "run__prompt_template")
        return blocks

    @admin.display(description="run", ordering="run")
    def run_link(self, block: Block) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:runs_run_change", args=[block.run_id]),
                           short_id(block.run_id))

    @admin.display(description="uid", ordering="uid")
    def uid_column(self, block: Block) -> str:
        return nowrap(block.uid)

    @admin.display(description="#", ordering="block_index")
    def index(self, block: Block) -> int:
        return block.block_index

    @admin.display(description="pass", ordering="pass_number")
    def pass_column(self, block: Block) -> int:
        return block.pass_number

    @admin.display(description="error message")
    def error(self, block: Block) -> str:
        return cut(block.error_message)

    @admin.display(description="cost", ordering="cost_usd")
    def cost(self, block: Block) -> str:
        return format_usd(block.cost_usd)

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, block: Block) -> str:
        return moment(block.finished_at)
