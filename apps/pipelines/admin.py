"""Pipelines in the operator's console: a pipeline's page is its steps, in order, each with its run's
live counts (and a link to the run's own page, where its operations are), and its items by state.
While the pipeline can still move the page reloads itself every REFRESH_SECONDS. Read-only: a
pipeline is made and operated through the API or `manage.py pipeline`."""

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from apps.core.admin import moment, short_id
from apps.pipelines.models import Pipeline
from apps.pipelines.selectors import pipeline_rollup
from apps.pipelines.transitions import PIPELINE_OPEN

REFRESH_SECONDS = 5


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ["pipeline", "owner", "status", "total_items", "steps_count", "created"]
    list_filter = ["status", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name", "owner__username"]
    list_select_related = ["owner"]
    fields = ("id", "name", "owner", "status", "total_items", "created_at", "ended_at")
    readonly_fields = ("id", "name", "owner", "status", "total_items", "created_at", "ended_at")
    change_form_template = "admin/pipelines/pipeline/change_form.html"

    @admin.display(description="pipeline", ordering="name")
    def pipeline(self, obj: Pipeline) -> str:
        return f"{obj.name or '(unnamed)'} · {str(obj.pk)[:8]}"

    @admin.display(description="steps")
    def steps_count(self, obj: Pipeline) -> int:
        return obj.steps.count()

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Pipeline) -> str:
        return moment(obj.created_at)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        pipeline = self.get_object(request, unquote(object_id))
        context: dict[str, Any] = {**(extra_context or {})}
        if pipeline is not None:
            rollup = pipeline_rollup(pipeline)
            for step in rollup["steps"]:
                step["run_url"] = reverse("admin:runs_run_change", args=[step["run_id"]])
                step["run_short"] = short_id(step["run_id"])
                done = step["completed_blocks"] + step["failed_blocks"] + step["canceled_blocks"]
                step["percent"] = round(100 * done / step["total_blocks"]) if step["total_blocks"] else 0
            context.update(
                rollup=rollup, live=pipeline.status in PIPELINE_OPEN, refresh_seconds=REFRESH_SECONDS
            )
        return super().change_view(request, object_id, form_url, extra_context=context)
