from django.contrib import admin

from apps.teams.models import Membership, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "limit_usd", "period", "window_days", "alert_level"]
    readonly_fields = ["alert_level"]
    raw_id_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "limit_usd", "period", "window_days", "alert_level", "created_at"]
    search_fields = ["name"]
    fields = ["name", "limit_usd", "period", "window_days", "alert_level", "webhook_url", "webhook_signer"]
    readonly_fields = ["alert_level", "webhook_signer"]
    inlines = [MembershipInline]
