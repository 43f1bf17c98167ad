"""Reading pipelines: one a user may see, its steps rolled up, its items with their paths."""

import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db.models import Count, QuerySet

from apps.pipelines.models import ItemStatus, Pipeline, PipelineItem, PipelineStep
from apps.runs.models import Block
from apps.teams.access import visible_to


def pipeline_get_visible(*, user: Any, pipeline_id: Any) -> Pipeline | None:
    """The pipeline if `user` may see it (apps/teams/access.py); None for a missing one, one they
    may not see and a malformed id alike."""
    try:
        pipeline_id = uuid.UUID(str(pipeline_id))
    except ValueError:
        return None
    return visible_to(user, Pipeline.objects.all()).filter(pk=pipeline_id).first()


def pipeline_rollup(pipeline: Pipeline) -> dict[str, Any]:
    """Each step's run counts and cost, items by where they are, and the pipeline's whole cost."""
    steps = list(pipeline.steps.select_related("run").order_by("position"))
    moving = dict(PipelineItem.objects.filter(pipeline=pipeline, status=ItemStatus.MOVING)
                  .values_list("position").annotate(n=Count("id")).values_list("position", "n"))
    by_status = dict(PipelineItem.objects.filter(pipeline=pipeline).values_list("status")
                     .annotate(n=Count("id")).values_list("status", "n"))
    return {
        "items": {status: by_status.get(status, 0) for status in ItemStatus.values},
        "cost_usd": sum((s.run.cost_usd for s in steps), Decimal(0)),
        "steps": [_step_summary(step, moving.get(step.position, 0)) for step in steps],
    }


def _step_summary(step: PipelineStep, items_in_step: int) -> dict[str, Any]:
    run = step.run
    return {
        "position": step.position, "name": step.name, "run_id": run.pk, "status": run.status,
        "paused_reason": run.paused_reason, "fan_out": step.fan_out, "gather": step.gather,
        "input": step.input_template, "filter": step.filter, "items_in_step": items_in_step,
        "total_blocks": run.total_blocks, "completed_blocks": run.completed_blocks,
        "failed_blocks": run.failed_blocks, "canceled_blocks": run.canceled_blocks,
        "cost_usd": run.cost_usd, "started_at": run.started_at, "finished_at": run.finished_at,
    }


def pipelines_list(*, user: Any) -> QuerySet[Pipeline]:
    """The pipelines `user` may see, newest first."""
    return visible_to(user, Pipeline.objects.all()).order_by("-created_at")


def pipeline_items(pipeline: Pipeline, *, status: str | None = None) -> QuerySet[PipelineItem]:
    items = PipelineItem.objects.filter(pipeline=pipeline)
    if status:
        items = items.filter(status=status)
    return items.order_by("id")


def item_paths(pipeline: Pipeline, items: Iterable[PipelineItem] | None = None) -> list[dict[str, Any]]:
    """Each item (all, or the page given) with its path: the steps it reached, with its block's status
    in each (`filtered` where a step's filter did not take it), the result's version stamp (model,
    prompt_version, pipeline_version: the build, pass_number), `stale` where that result was produced
    from an earlier output since reseeded, and why the item stopped if it did."""
    items = list(pipeline_items(pipeline) if items is None else items)
    steps = list(pipeline.steps.order_by("position").values_list("position", "name", "run_id"))
    inside = children_steps(pipeline)
    parents = dict(PipelineItem.objects.filter(pk__in={i.parent_id for i in items if i.parent_id})
                   .values_list("pk", "uid"))
    names = {run_id: (position, name) for position, name, run_id in steps}
    blocks: dict[str, dict[int, dict[str, Any]]] = {item.uid: {} for item in items}
    for run_id, uid, *stamp in (Block.objects.filter(run_id__in=list(names), uid__in=list(blocks))
                                .values_list("run_id", "uid", *BLOCK_STAMP)):
        blocks[uid][names[run_id][0]] = dict(zip(BLOCK_STAMP, stamp, strict=True))
    rows = []
    for item in items:
        path = []
        stale = set(item.stale_steps or [])
        for position, name, _ in steps:
            # A child's path is its steps between the fan-out and the gather; a parent's, the others.
            if (position in inside) != (item.parent_id is not None):
                continue
            block = blocks[item.uid].get(position)
            if item.status == ItemStatus.FILTERED and item.position == position:
                block = {**dict.fromkeys(BLOCK_STAMP, ""), "pass_number": None, "status": ItemStatus.FILTERED}
            if block is None:
                break
            path.append({"step": name, **block, "stale": position in stale})
        rows.append({"uid": item.uid, "status": item.status, "position": item.position,
                     "stop_reason": item.stop_reason, "metadata": item.metadata, "path": path,
                     "parent_uid": parents.get(item.parent_id) if item.parent_id else None})
    return rows


def children_steps(pipeline: Pipeline) -> set[int]:
    """The positions of the steps that run on child items: after a fan-out, up to (not including)
    the step that gathers them, or to the end."""
    inside: set[int] = set()
    start = None
    for position, fan_out, gather in pipeline.steps.order_by("position").values_list("position", "fan_out",
                                                                                     "gather"):
        if gather:
            start = None
        elif start is not None:
            inside.add(position)
        if fan_out:
            start = position
    return inside


# What a path shows of an item's block in a step: its status and its result's version stamp.
BLOCK_STAMP = ("status", "model", "prompt_version", "pipeline_version", "pass_number")
