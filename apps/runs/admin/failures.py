"""The dead-letter table in the operator's console (apps.failures.models.PipelineFailure).

Failures are read-only rows with two operations, as actions (bulk) and as buttons on a failure's page:
replay now and resolve with a note, through the same services as the API. It lives with the run
engine because replay is the engine's (apps/runs/services/replay.py: the block goes back to work in
its run); the diagnostic log's page is apps/failures/admin.py. Snapshots and messages were redacted
when written, so no page can show a secret.
"""

from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from apps.audit.services import actor_from_admin
from apps.core.admin import OperatorActionsMixin, cut, moment, nowrap, pretty_json, short_id
from apps.failures.auditing import failure_audited, failures_bulk_recorded
from apps.failures.models import (
    UNRESOLVED,
    FailureState,
    PipelineFailure,
    failure_state,
    state_filter,
)
from apps.failures.services import FailureStateError, failure_resolve
from apps.runs.services.replay import failure_replay_now, failures_replay_selected

RESOLVE_TEMPLATE = "admin/failures/pipelinefailure/resolve.html"


class ResolveForm(forms.Form):
    note = forms.CharField(
        max_length=2000, strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Why this failure needs no replay. Resolved failures are never replayed again.",
    )


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(UNRESOLVED, "Unresolved (scheduled or parked)"), *FailureState.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[PipelineFailure]
                 ) -> QuerySet[PipelineFailure]:
        value = self.value()
        if value in (UNRESOLVED, *FailureState.values):
            return queryset.filter(state_filter(value))
        return queryset


@admin.register(PipelineFailure)
class PipelineFailureAdmin(OperatorActionsMixin, admin.ModelAdmin):
    # Fits a 1,400 px screen: the failing function is a filter rather than a column (there are few),
    # ids are shortened and the message cut, each whole in its tooltip.
    list_display = ["id", "error", "message", "run_short", "block_uid", "attempts", "replays", "state",
                    "failed", "next_retry"]
    list_filter = [StateFilter, "error_code", "failing_function", ("failed_at", admin.DateFieldListFilter)]
    search_fields = ["error_code", "error_message", "block__uid"]
    show_full_result_count = False
    actions = ["replay_now", "resolve_with_note"]
    fields = ["id", "state", "run_link", "block_link", "failing_function", "caller_function",
              "http_status", "error_code", "error_message", "attempt_count", "replay_count", "failed_at",
              "next_retry_at", "resolved_at", "resolution_note", "payload", "context_display"]
    readonly_fields = ["state", "run_link", "block_link", "payload", "context_display"]
    change_form_template = "admin/failures/pipelinefailure/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[PipelineFailure]:
        # The block's uid without loading the block (its input and output can be long).
        return super().get_queryset(request).annotate(block_uid=F("block__uid"))

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/replay/", wrap(self.replay_view),
                 name="failures_pipelinefailure_replay"),
            path("<path:object_id>/resolve/", wrap(self.resolve_view),
                 name="failures_pipelinefailure_resolve"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict | None = None) -> HttpResponse:
        row = self.get_object(request, unquote(object_id))
        context = {**(extra_context or {}),
                   "can_operate": self.has_operate_permission(request),
                   "is_unresolved": row is not None and row.resolved_at is None}
        return super().change_view(request, object_id, form_url, extra_context=context)

    # --- columns ----------------------------------------------------------------------------------

    @admin.display(description="state")
    def state(self, row: PipelineFailure) -> str:
        return failure_state(row)

    @admin.display(description="error message")
    def message(self, row: PipelineFailure) -> str:
        return cut(row.error_message)

    @admin.display(description="run", ordering="run")
    def run_short(self, row: PipelineFailure) -> str:
        if row.run_id is None:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:runs_run_change", args=[row.run_id]),
                           short_id(row.run_id))

    @admin.display(description="failed", ordering="failed_at")
    def failed(self, row: PipelineFailure) -> str:
        return moment(row.failed_at)

    @admin.display(description="next replay", ordering="next_retry_at")
    def next_retry(self, row: PipelineFailure) -> str:
        return moment(row.next_retry_at)

    @admin.display(description="block uid")
    def block_uid(self, row: PipelineFailure) -> str:
        return nowrap(getattr(row, "block_uid", None) or "-")

    @admin.display(description="error (http)", ordering="error_code")
    def error(self, row: PipelineFailure) -> str:
        status = f" ({row.http_status})" if row.http_status else ""
        return nowrap(f"{row.error_code}{status}")

    @admin.display(description="attempts", ordering="attempt_count")
    def attempts(self, row: PipelineFailure) -> int:
        return row.attempt_count

    @admin.display(description="replays", ordering="replay_count")
    def replays(self, row: PipelineFailure) -> int:
        return row.replay_count

    @admin.display(description="run")
    def run_link(self, row: PipelineFailure) -> str:
        if row.run_id is None:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:runs_run_change", args=[row.run_id]),
                           row.run_id)

    @admin.display(description="block")
    def block_link(self, row: PipelineFailure) -> str:
        if row.block_id is None:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:runs_block_change", args=[row.block_id]),
                           self.block_uid(row))

    @admin.display(description="payload snapshot (redacted)")
    def payload(self, row: PipelineFailure) -> str:
        return pretty_json(row.payload_snapshot)

    @admin.display(description="context")
    def context_display(self, row: PipelineFailure) -> str:
        return pretty_json(row.context)

    # --- operations -------------------------------------------------------------------------------

    @admin.action(description="Replay now (the block goes back to work)", permissions=["operate"])
    def replay_now(self, request: HttpRequest, queryset: QuerySet[PipelineFailure]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        with transaction.atomic():
            report = failures_replay_selected(failure_ids=ids)
            done = [pk for pk in ids if pk not in report.refused]
            failures_bulk_recorded(actor_from_admin(request), "replay", done=done, refused=report.refused)
        if report.replayed:
            self.message_user(request, f"{len(report.replayed)} failure(s) replayed.", messages.SUCCESS)
        if report.resolved:
            self.message_user(request, f"{len(report.resolved)} failure(s) resolved instead: their block "
                                       "had already succeeded.", messages.INFO)
        for pk, reason in report.refused.items():
            self.message_user(request, f"Failure {pk} not replayed: {reason}", messages.WARNING)

    @admin.action(description="Resolve with a note…", permissions=["operate"])
    def resolve_with_note(self, request: HttpRequest, queryset: QuerySet[PipelineFailure]
                          ) -> TemplateResponse | None:
        form = ResolveForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            self._resolve(request, list(queryset.values_list("pk", flat=True)), form.cleaned_data["note"])
            return None
        return self._resolve_page(request, form, queryset, action="resolve_with_note")

    def replay_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        row = self._operable(request, object_id)
        try:
            pk = row.pk
            row = failure_audited(actor_from_admin(request), "replay", pk,
                                  lambda: failure_replay_now(failure_id=pk))
        except (FailureStateError, PipelineFailure.DoesNotExist) as exc:
            self.message_user(request, f"Not replayed: {exc}", messages.WARNING)
        else:
            if row.resolved_at:
                self.message_user(request, "Resolved instead: the block had already succeeded.",
                                  messages.INFO)
            else:
                self.message_user(request, "Replayed: the block is back at work.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:failures_pipelinefailure_change", args=[row.pk]))

    def resolve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        row = self._operable(request, object_id)
        form = ResolveForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            self._resolve(request, [row.pk], form.cleaned_data["note"])
            return HttpResponseRedirect(reverse("admin:failures_pipelinefailure_change", args=[row.pk]))
        return self._resolve_page(request, form, self.get_queryset(request).filter(pk=row.pk))

    def _operable(self, request: HttpRequest, object_id: str) -> PipelineFailure:
        if not self.has_operate_permission(request):
            raise PermissionDenied
        row = self.get_object(request, unquote(object_id))
        if row is None:
            raise Http404("no such failure")
        return row

    def _resolve(self, request: HttpRequest, ids: list[int], note: str) -> None:
        resolved = 0
        for pk in ids:
            try:
                failure_audited(actor_from_admin(request), "resolve", pk,
                                partial(failure_resolve, failure_id=pk, note=note))
            except (FailureStateError, PipelineFailure.DoesNotExist) as exc:
                self.message_user(request, f"Failure {pk} not resolved: {exc}", messages.WARNING)
            else:
                resolved += 1
        if resolved:
            self.message_user(request, f"{resolved} failure(s) resolved.", messages.SUCCESS)

    def _resolve_page(self, request: HttpRequest, form: ResolveForm,
                      queryset: QuerySet[PipelineFailure], action: str = "") -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Resolve failures",
            "opts": self.opts,
            "form": form,
            "rows": queryset[:200],
            "count": queryset.count(),
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "selected_ids": list(queryset.values_list("pk", flat=True)),
        }
        return TemplateResponse(request, RESOLVE_TEMPLATE, context)
