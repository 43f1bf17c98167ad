"""The audit trail in the admin: read-only (no add, change or delete), for staff with the view
permission. PostgreSQL refuses changes anyway (the trigger of migration 0002)."""

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from apps.audit.models import AuditRecord


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):
    list_display = ["at", "actor_name", "channel", "action", "object_type", "object_id", "remote_address"]
    list_filter = ["channel", "object_type", "action"]
    search_fields = ["object_id", "actor_name", "action"]
    date_hierarchy = "at"
    readonly_fields = [
        "at",
        "actor_id",
        "actor_name",
        "channel",
        "remote_address",
        "action",
        "object_type",
        "object_id",
        "team_id",
        "changes_display",
    ]
    exclude = ["changes"]
    actions = None
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="changes")
    def changes_display(self, row: AuditRecord) -> str:
        return format_html("<pre>{}</pre>", json.dumps(row.changes, indent=2, sort_keys=True))
