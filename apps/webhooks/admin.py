"""Webhooks in the operator's console: the delivery log (read-only, with "redeliver now" as an action)
and the users' signing secrets, of which only the suffix is ever shown."""

import json

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from apps.audit.services import actor_from_admin, record
from apps.core.admin import OperatorActionsMixin, cut, moment, nowrap, short_id
from apps.webhooks.models import WebhookDelivery, WebhookSecret
from apps.webhooks.selectors import delivery_payload
from apps.webhooks.services import delivery_redeliver, delivery_team_id


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(OperatorActionsMixin, admin.ModelAdmin):
    list_display = ["id", "run_short", "pass_number", "status", "attempts", "last_status_code", "error",
                    "next_attempt", "delivered"]
    list_filter = ["status", "last_error", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["event_id", "run__id"]
    show_full_result_count = False
    actions = ["redeliver_now"]
    fields = ["id", "event_id", "event_type", "run_link", "pass_number", "url", "status", "attempts",
              "last_attempt_at", "last_status_code", "last_error", "last_error_detail", "next_attempt_at",
              "give_up_at", "delivered_at", "created_at", "payload"]
    readonly_fields = ["run_link", "payload"]

    @admin.display(description="run", ordering="run")
    def run_short(self, row: WebhookDelivery) -> str:
        if row.run_id is None:
            return f"team {row.team_id}"
        return format_html('<a href="{}">{}</a>', reverse("admin:runs_run_change", args=[row.run_id]),
                           short_id(row.run_id))

    @admin.display(description="run")
    def run_link(self, row: WebhookDelivery) -> str:
        if row.run_id is None:
            return f"team {row.team_id}"
        return format_html('<a href="{}">{}</a>', reverse("admin:runs_run_change", args=[row.run_id]),
                           row.run_id)

    @admin.display(description="last error", ordering="last_error")
    def error(self, row: WebhookDelivery) -> str:
        return cut(f"{row.last_error}: {row.last_error_detail}" if row.last_error else "")

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt(self, row: WebhookDelivery) -> str:
        return moment(row.next_attempt_at)

    @admin.display(description="delivered at", ordering="delivered_at")
    def delivered(self, row: WebhookDelivery) -> str:
        return moment(row.delivered_at)

    @admin.display(description="payload (as sent)")
    def payload(self, row: WebhookDelivery) -> str:
        return format_html('<pre style="white-space:pre-wrap;margin:0">{}</pre>',
                           json.dumps(delivery_payload(row), indent=2, ensure_ascii=False))

    @admin.action(description="Redeliver now (same event id, new signature)", permissions=["operate"])
    def redeliver_now(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = 0
        actor = actor_from_admin(request)
        for pk in queryset.values_list("pk", flat=True):
            with transaction.atomic():
                row = delivery_redeliver(delivery_id=pk)
                record(actor=actor, action="webhook_delivery.redeliver", object_type="webhook_delivery",
                       object_id=row.pk, after={"run_id": str(row.run_id), "pass_number": row.pass_number,
                                                "status": row.status},
                       team_id=delivery_team_id(row))
            count += 1
        self.message_user(request, f"{count} delivery(ies) queued again; refresh to see the outcome.",
                          messages.SUCCESS)


@admin.register(WebhookSecret)
class WebhookSecretAdmin(OperatorActionsMixin, admin.ModelAdmin):
    list_display = ["owner", "suffix_display", "created_at"]
    search_fields = ["owner__username"]
    list_select_related = ["owner"]
    # Never the ciphertext: only who, which suffix, since when.
    fields = ["owner", "suffix_display", "created_at"]
    readonly_fields = ["suffix_display"]

    @admin.display(description="secret")
    def suffix_display(self, row: WebhookSecret) -> str:
        return nowrap(f"whsec_…{row.suffix}")
