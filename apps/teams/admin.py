"""Teams in the admin. Every save is audited (channel `admin`): the team's own fields (`team.create`,
`team.update`, `team.limit`) and each membership the inline adds, changes or removes
(`team.member_add`, `team.member_role`, `team.member_limit`, `team.member_remove`), in the admin's
own transaction. Deleting a team is the action "Delete selected teams ..." (apps/teams/deletion.py,
in the background); the admin's own delete (Django's collector, refused anyway by the PROTECT
foreign keys of the team's keys, runs and pipelines) is off."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.audit.services import actor_from_admin
from apps.core.errors import StateConflict
from apps.teams.auditing import LIMIT_FIELDS, member_fields, member_record, team_fields, team_record
from apps.teams.deletion import team_delete
from apps.teams.models import Membership, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "limit_usd", "period", "window_days", "alert_level"]
    readonly_fields = ["alert_level"]
    raw_id_fields = ["user"]


def _split(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the limit's fields, the rest)."""
    return ({k: v for k, v in fields.items() if k in LIMIT_FIELDS},
            {k: v for k, v in fields.items() if k not in LIMIT_FIELDS})


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "limit_usd", "period", "window_days", "alert_level", "created_at"]
    search_fields = ["name"]
    fields = ["name", "limit_usd", "period", "window_days", "alert_level", "webhook_url", "webhook_signer"]
    readonly_fields = ["alert_level", "webhook_signer"]
    inlines = [MembershipInline]
    actions = ["delete_in_background"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_erase_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("teams.delete_team")

    def save_model(self, request: HttpRequest, obj: Team, form: Any, change: bool) -> None:
        before = team_fields(Team.objects.get(pk=obj.pk)) if change else {}
        super().save_model(request, obj, form, change)
        after = team_fields(Team.objects.get(pk=obj.pk))  # as stored (a limit of 300: 300.0000)
        actor = actor_from_admin(request)
        if not change:
            team_record(actor, "create", obj.pk, None, after)
            return
        limit_before, rest_before = _split(before)
        limit_after, rest_after = _split(after)
        if rest_before != rest_after:
            team_record(actor, "update", obj.pk, rest_before, rest_after)
        if limit_before != limit_after:
            team_record(actor, "limit", obj.pk, limit_before, limit_after)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        team = form.instance
        rows = Membership.objects.select_related("user").filter(team=team)
        before = {row.pk: member_fields(row) for row in rows}
        super().save_formset(request, form, formset, change)
        after = {row.pk: member_fields(row) for row in rows.all()}
        actor = actor_from_admin(request)
        for pk, old in before.items():
            new = after.get(pk)
            if new is None:
                member_record(actor, "member_remove", team.pk, old["user_id"], old, None)
                continue
            limit_old, rest_old = _split(old)
            limit_new, rest_new = _split(new)
            if rest_old != rest_new:
                member_record(actor, "member_role", team.pk, new["user_id"], rest_old, rest_new)
            if limit_old != limit_new:
                member_record(actor, "member_limit", team.pk, new["user_id"], limit_old, limit_new)
        for pk, new in after.items():
            if pk not in before:
                member_record(actor, "member_add", team.pk, new["user_id"], None, new)
        return None

    @admin.action(description="Delete selected teams and all they own (in the background)",
                  permissions=["erase"])
    def delete_in_background(self, request: HttpRequest, queryset: QuerySet[Team]) -> None:
        actor = actor_from_admin(request)
        for team in queryset:
            try:
                team_delete(team_id=team.pk, actor=actor)
            except StateConflict as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                self.message_user(request, f"team {team.name}: deleting in the background.",
                                  messages.SUCCESS)
