"""A pipeline: items that go through an ordered list of steps, each step a run of its own.

Each step IS a run (its blocks, counts, cost, lane, budget): everything that works for runs works for
a step. An item is one line of the user's input; its block in each step carries the item's uid (a
block's uid is unique in its run) and metadata, which is how a step's block is found for an item.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.pipelines.transitions import ItemStatus, PipelineItemQuerySet, PipelineQuerySet, PipelineStatus
from apps.runs.models import Run
from apps.teams.access import AccessRule

__all__ = ["ItemStatus", "Pipeline", "PipelineItem", "PipelineStatus", "PipelineStep"]


class Pipeline(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    access = AccessRule(noun="pipeline")

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pipelines")
    # The team the pipeline belongs to; empty: its owner's alone (apps/teams/access.py says who may do what).
    # PROTECT: a team goes only after its pipelines (the team deletion removes them first, in batches).
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, null=True, blank=True,
                             related_name="pipelines")
    name = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=16, choices=PipelineStatus.choices, default=PipelineStatus.RUNNING)
    total_items = models.PositiveIntegerField(default=0)
    # The spec as given (steps' settings, templates, filters): what created it, for the record.
    spec = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = PipelineQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=PipelineStatus.values),
                                   name="pipeline_status_valid"),
        ]
        indexes = [models.Index(fields=["owner", "-created_at"], name="pipeline_owner_created_idx")]

    def __str__(self) -> str:
        return self.name or str(self.id)


class PipelineStep(models.Model):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="steps")
    # 1 for the first step: its input is the item's input.
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=50)
    # The run that is this step. PROTECT: a step's run goes with its pipeline, not on its own.
    run = models.OneToOneField(Run, on_delete=models.PROTECT, related_name="pipeline_step")
    # A later step's block input: a template over the item's input, its metadata and earlier steps'
    # outputs ({input}, {metadata.x}, {steps.grade.output}, {steps.grade.output.score}). Empty: step 1.
    input_template = models.TextField(blank=True, default="")
    # Which items this step takes, over earlier outputs (`steps.grade.output.score < 60`); empty: all.
    filter = models.CharField(max_length=500, blank=True, default="")
    # Fan-out: a field of this step's structured output (an array, `segments` or `a.b`) whose elements
    # become child items of the item, each going on to the next step alone. Empty: no fan-out.
    fan_out = models.CharField(max_length=200, blank=True, default="")
    # Gather: this step takes an item back from its children (of the nearest fan-out before it) once
    # every child has settled, reading their outputs of the step before as `{children}`.
    gather = models.BooleanField(default=False)

    class Meta:
        ordering = ["pipeline", "position"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "position"], name="pipeline_step_position_unique"),
            models.UniqueConstraint(fields=["pipeline", "name"], name="pipeline_step_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline_id} step {self.position} ({self.name})"


class PipelineItem(models.Model):
    """Where one item is: the step it is in (`position`) and whether it can still move."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="items")
    uid = models.CharField(max_length=200)
    input = models.TextField()
    metadata = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ItemStatus.choices, default=ItemStatus.MOVING)
    position = models.PositiveSmallIntegerField(default=1)
    # Why a failed or filtered item stopped (the block's error, or the filter that refused it).
    stop_reason = models.TextField(blank=True, default="")
    # Positions of later steps whose result for this item was produced from an earlier step's output
    # that has since been reseeded (stale), each cleared when the item's new result there is written.
    stale_steps = models.JSONField(default=list, blank=True)
    # A child item (from a fan-out): its parent, and its place among its siblings (from 0). Its uid is
    # `<parent uid>#<index>`.
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True,
                               related_name="children")
    index = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PipelineItemQuerySet.as_manager()

    class Meta:
        ordering = ["pipeline", "id"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "uid"], name="pipeline_item_uid_unique"),
            models.CheckConstraint(condition=Q(status__in=ItemStatus.values),
                                   name="pipeline_item_status_valid"),
        ]
        indexes = [
            # "Can any item still reach step k?": moving items below k.
            models.Index(fields=["pipeline", "position"], condition=Q(status="moving"),
                         name="pipeline_item_moving_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline_id}/{self.uid}"
