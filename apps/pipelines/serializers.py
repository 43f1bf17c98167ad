"""What the pipelines API reads and writes. A step takes a run's settings (apps.runs.serializers), less
the key (the pipeline's), plus its name, input template and filter."""

from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

from apps.pipelines.models import ItemStatus, PipelineStatus
from apps.runs.models import BlockStatus, RunStatus
from apps.runs.serializers.inputs import (
    BlockInputSerializer,
    RunSettingsInputSerializer,
    StrictSerializer,
    TextField,
    stored_options,
)

INPUT_HELP = (
    "A later step's block input: a template over the item's `{input}`, its `{metadata.<field>}` and "
    "earlier steps' outputs, `{steps.<step>.output}` (text) or `{steps.<step>.output.<field>}` (a field "
    "of its output_schema). Default: the previous step's output. Not allowed on the first step.")
FILTER_HELP = ("Which items this step takes: `<name> <op> <value>` over the same names, e.g. "
               "`steps.grade.output.score < 60` (op one of < <= > >= == !=). Others are `filtered`.")


class PipelineStepInputSerializer(RunSettingsInputSerializer):
    # DRF's way to drop an inherited field: the pipeline has the key, for every step.
    key = None  # type: ignore[assignment]
    team = None  # type: ignore[assignment]  # the pipeline's team is every step's
    name = TextField(max_length=50, validators=[RegexValidator(r"^[a-z][a-z0-9_]*$")],
                     help_text="1 to 50 of a-z, 0-9 and _, starting with a letter.")
    input = TextField(required=False, allow_blank=True, default="", trim_whitespace=False,
                      help_text=INPUT_HELP)
    filter = TextField(required=False, allow_blank=True, default="", max_length=500, help_text=FILTER_HELP)
    fan_out = TextField(required=False, allow_blank=True, default="", max_length=200,
                        help_text="An array field of this step's output_schema (`segments`, `a.b`): each "
                                  "element becomes a child item (uid `<parent>#<index>`, its input the "
                                  "element) that goes on to the next step alone. At most "
                                  "PIPELINE_MAX_CHILDREN per item.")
    gather = serializers.BooleanField(required=False, default=False,
                                      help_text="Take each item back from its children (of the fan-out "
                                                "before it) once every child has settled; the input reads "
                                                "their outputs of the step before as `{children}` (a JSON "
                                                "array; the default input).")

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        value["options"] = stored_options(value.get("options"))
        return value


class PipelineCreateInputSerializer(StrictSerializer):
    key = serializers.IntegerField(min_value=1, max_value=2**63 - 1,
                                   help_text="Id of one of your provider keys (or, with `team`, of the "
                                             "team's keys), used by every step.")
    team = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False, allow_null=True,
                                    default=None, help_text="The team the pipeline (and its runs) is for.")
    name = TextField(max_length=200, required=False, allow_blank=True, default="")
    steps = PipelineStepInputSerializer(many=True, allow_empty=False)
    items = BlockInputSerializer(many=True, allow_empty=False,
                                 help_text="The items: each the first step's block (uid, input, metadata).")


class PipelineUploadInputSerializer(serializers.Serializer):
    spec = serializers.FileField(allow_empty_file=False,
                                 help_text="YAML (or JSON): name, key (an id) and steps, each as the JSON "
                                           "body's steps (docs/pipelines.md).")
    items = serializers.FileField(allow_empty_file=False,
                                  help_text='JSONL: one item per line, `{"uid": ..., "input": ..., '
                                            '"metadata": {...}}` (uid and metadata optional).')
    key = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False,
                                   help_text="Id of one of your provider keys (else the spec's `key`).")


class PipelineItemFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ItemStatus.choices, required=False,
                                     help_text="Only the items in this state.")


class PipelineSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=PipelineStatus.choices)
    total_items = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)


class PipelineStepSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    name = serializers.CharField()
    run_id = serializers.UUIDField(help_text="The run that is this step: every run endpoint works on it.")
    status = serializers.ChoiceField(choices=RunStatus.choices)
    paused_reason = serializers.CharField(help_text="Why the step's run is paused (empty if it is not).")
    fan_out = serializers.CharField(help_text="The array field this step fans out (empty: none).")
    gather = serializers.BooleanField(help_text="Whether this step gathers items back from their children.")
    input = serializers.CharField()
    filter = serializers.CharField()
    items_in_step = serializers.IntegerField(help_text="Items moving in this step now.")
    total_blocks = serializers.IntegerField()
    completed_blocks = serializers.IntegerField()
    failed_blocks = serializers.IntegerField()
    canceled_blocks = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=16, decimal_places=8)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class PipelineItemCountsSerializer(serializers.Serializer):
    moving = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    filtered = serializers.IntegerField()
    fanned_out = serializers.IntegerField(help_text="Items fanned out into children (counted too).")


class PipelineDetailSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=PipelineStatus.choices)
    total_items = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    items = PipelineItemCountsSerializer()
    cost_usd = serializers.DecimalField(max_digits=16, decimal_places=8)
    steps = PipelineStepSerializer(many=True)
    still_paused = serializers.DictField(child=serializers.CharField(), required=False,
                                         help_text="After a resume: the steps that stay paused, and why.")


class PathStepSerializer(serializers.Serializer):
    step = serializers.CharField()
    status = serializers.ChoiceField(choices=[*BlockStatus.choices, (ItemStatus.FILTERED, "Filtered")])
    stale = serializers.BooleanField(help_text="This result was produced from an earlier step's output "
                                               "that has since been reseeded; it is rewritten when the "
                                               "item reaches this step again.")
    model = serializers.CharField(help_text="The model that wrote this result (the step's version).")
    prompt_version = serializers.CharField(help_text="The hash of the prompt that wrote this result.")
    pipeline_version = serializers.CharField(help_text="The build that wrote this result.")
    pass_number = serializers.IntegerField(allow_null=True, help_text="The pass of the step's run.")


class PipelineItemSerializer(serializers.Serializer):
    uid = serializers.CharField()
    status = serializers.ChoiceField(choices=ItemStatus.choices)
    position = serializers.IntegerField(help_text="The step it is in (or stopped in), from 1.")
    stop_reason = serializers.CharField()
    metadata = serializers.JSONField(allow_null=True)
    parent_uid = serializers.CharField(allow_null=True, help_text="A child item's parent's uid (a fan-out).")
    path = PathStepSerializer(many=True)
