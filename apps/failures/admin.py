"""The diagnostic log in the operator's console: read-only. Messages and metadata were redacted when
written, so no page can show a secret. (The dead-letter table's page, with its replay, is the run
engine's: apps/runs/admin/failures.py.)"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from apps.core.admin import pretty_json, short_id
from apps.failures.models import DiagnosticLog


@admin.register(DiagnosticLog)
class DiagnosticLogAdmin(admin.ModelAdmin):
    list_display = ["created_at", "log_level", "event_code", "function_name", "run_column", "block_column",
                    "short_message"]
    list_filter = ["event_code", "function_name", "log_level", ("created_at", admin.DateFieldListFilter)]
    show_full_result_count = False
    fields = ["created_at", "log_level", "event_code", "function_name", "function_version", "run",
              "block", "message", "metadata_display"]
    readonly_fields = ["metadata_display"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="run", ordering="run")
    def run_column(self, row: DiagnosticLog) -> str:
        if row.run_id is None:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:runs_run_change", args=[row.run_id]),
                           short_id(row.run_id))

    @admin.display(description="block", ordering="block")
    def block_column(self, row: DiagnosticLog) -> str:
        if row.block_id is None:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:runs_block_change", args=[row.block_id]),
                           row.block_id)

    @admin.display(description="message")
    def short_message(self, row: DiagnosticLog) -> str:
        return row.message if len(row.message) <= 120 else f"{row.message[:119]}…"

    @admin.display(description="metadata")
    def metadata_display(self, row: DiagnosticLog) -> str:
        return pretty_json(row.metadata)
