"""The diagnostic log in the operator's console: read-only. Messages and metadata were redacted when
written, so no page can show a secret. (The dead-letter table's page, with its replay, is the run
engine's: apps/runs/admin/failures.py.)"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.core.admin import pretty_json
from apps.failures.models import DiagnosticLog


@admin.register(DiagnosticLog)
class DiagnosticLogAdmin(admin.ModelAdmin):
    list_display = ["created_at", "log_level", "event_code", "function_name", "run_id", "block_id",
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

    @admin.display(description="message")
    def short_message(self, row: DiagnosticLog) -> str:
        return row.message if len(row.message) <= 120 else f"{row.message[:119]}…"

    @admin.display(description="metadata")
    def metadata_display(self, row: DiagnosticLog) -> str:
        return pretty_json(row.metadata)
