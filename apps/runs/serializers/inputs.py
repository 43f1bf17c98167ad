"""What the API reads for runs and blocks: request bodies, forms and query strings.

They check types and ranges (so the schema documents them) and refuse unknown fields; the services
remain the authority and check again. Their component names in the schema are their class names.
"""


import json
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.runs.models import BlockStatus, PassScope, RunMode, RunStatus
from apps.runs.selectors import RUN_ORDERINGS

PROMPT_MAX_CHARS = 500_000
OUTPUT_SCHEMA_HELP = (
    "A JSON Schema for each block's answer (structured outputs): sent to the provider as "
    "`output_config.format`, every answer validated against it and stored as JSON (`output_json`). The "
    "provider's subset: every object sets `additionalProperties: false`; no numeric or length bounds, no "
    "recursion; at most 64 KB. An answer that is no document of it fails the block with `output_invalid` "
    "(retried within max_attempts).")
DEFAULT_OPTIONS: dict[str, Any] = {"cache": False, "cache_ttl": "5m", "pack_size": 1, "stream": False,
                                   "max_cost_usd": None}



class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know (a misspelt setting, `prallelism`, must not silently fall back to
    its default), together with every other error of the same input: an upload with a stray field and
    no `file` hears about both at once, not about one per attempt."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        errors = {name: ["Unknown field."] for name in unknown}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            raise serializers.ValidationError({**detail, **errors}) from None
        if errors:
            raise serializers.ValidationError(errors)
        return value


class TextField(serializers.CharField):
    """Text that must arrive as text: `5` is refused, as a JSONL line refuses it, not turned into "5"."""

    default_error_messages = {"not_text": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_text")
        return super().to_internal_value(data)


class UidField(serializers.CharField):
    """A uid is a string or a whole number (read as its digits), as in a JSONL line."""

    default_error_messages = {"not_uid": "Must be a string or an integer."}

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool) or not isinstance(data, str | int):
            self.fail("not_uid")
        return super().to_internal_value(data)


class RunOptionsSerializer(StrictSerializer):
    cache = serializers.BooleanField(default=False, help_text="Cache the stable prompt prefix.")
    cache_ttl = serializers.ChoiceField(choices=["5m", "1h"], default="5m")
    pack_size = serializers.IntegerField(min_value=1, max_value=50, default=1,
                                         help_text="Blocks sent together in one call.")
    stream = serializers.BooleanField(default=False)
    max_cost_usd = serializers.DecimalField(
        max_digits=12, decimal_places=4, min_value=Decimal("0.0001"), required=False, allow_null=True,
        default=None, help_text="The run pauses once it has spent this much.",
    )
    fallback_overload_seconds = serializers.FloatField(
        min_value=1, required=False,
        help_text="With fallback_models: how long a block's calls may come back overloaded (529) before "
                  "it moves to the next model (default 300).")
    fallback_on_invalid_output = serializers.BooleanField(
        required=False,
        help_text="With fallback_models: a block whose answers failed the output checks on every "
                  "attempt moves to the next model instead of failing.")
    fallback_in_batch = serializers.BooleanField(
        required=False,
        help_text="With fallback_models in batch mode: a block moves on to the next model in a later "
                  "batch as it would live (not found, not permitted, or with fallback_on_invalid_output "
                  "its answers refused every time). Without it, batches use the primary model only.")


def stored_options(validated: dict[str, Any] | None) -> dict[str, Any]:
    """Options as stored on the run: every default spelled out, JSON-safe, no budget if none."""
    options = {**DEFAULT_OPTIONS, **(validated or {})}
    budget = options.pop("max_cost_usd")
    if budget is not None:
        options["max_cost_usd"] = str(budget)
    return options


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(serializers.JSONField):
    """A JSON object (not an array, a string or a number)."""

    default_error_messages = {"not_object": "Must be a JSON object."}

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if value is not None and not isinstance(value, dict):
            self.fail("not_object")
        return value


class BlockInputSerializer(StrictSerializer):
    uid = UidField(max_length=200, required=False,
                   help_text="Unique within the run; defaults to line-N (N from 1). No control characters.")
    input = TextField(trim_whitespace=False)
    metadata = JSONObjectField(
        required=False, allow_null=True,
        help_text="Your own fields for this block (record ids, fields to join on), at most 8 KB as JSON: "
                  "returned with its result everywhere, sent to the model only where the template names "
                  "a field (`{metadata.title}`).")


class RunSettingsSerializer(StrictSerializer):
    """The fields shared by an inline create and an upload."""

    key = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False,
                                   help_text="Id of one of your provider keys (or, with `team`, one of the "
                                             "team's keys). A key whose last "
                                             "validation failed is refused (409 key_invalid). "
                                             "`key` or `keys` is required.")
    team = serializers.IntegerField(
        min_value=1, max_value=2**63 - 1, required=False, allow_null=True, default=None,
        help_text="The team the run is for (you must be its admin or member: a viewer gets 403); "
                  "its key must be the team's. Omitted: a personal run.")
    keys = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False,
        allow_empty=False, max_length=20,
        help_text="A pool of your provider keys (ids, each once): the run's calls are spread over "
                  "their lanes, so it can reach the sum of their limits; a key the provider refuses "
                  "leaves the pool and the run goes on with the others. With `key`, `key` comes first.")

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        """`key` or `keys` is required: said together with every other error of the input."""
        named = "key" not in self.fields or (  # (a pipeline's step takes the pipeline's key)
            hasattr(data, "get") and (data.get("key") not in (None, "") or bool(data.get("keys"))))
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            missing = {} if named else {"key": [serializers.ErrorDetail("This field is required.",
                                                                        code="required")]}
            raise serializers.ValidationError({**missing, **detail}) from None
        if not named:
            raise serializers.ValidationError({"key": ["This field is required."]})
        return value

    model = TextField(max_length=100, help_text="A model id from the catalog.")
    fallback_models = serializers.ListField(
        child=TextField(max_length=100), required=False, max_length=5,
        help_text="Models a block moves on to, in order, when the one it is on cannot serve it: not "
                  "found or not permitted, overloaded past `options.fallback_overload_seconds`, or "
                  "(with `options.fallback_on_invalid_output`) answers that failed the output checks on "
                  "every attempt. Each a catalog model, none twice, each able to write `max_tokens`. "
                  "A budget reserves at the most expensive of them. Batch mode uses the primary only.")
    name = TextField(max_length=200, required=False, allow_blank=True, default="")
    system_prompt = TextField(max_length=PROMPT_MAX_CHARS, required=False, allow_blank=True,
                              default="", trim_whitespace=False)
    prompt_template = TextField(
        max_length=PROMPT_MAX_CHARS, required=False, default="{input}", trim_whitespace=False,
        help_text="`{input}` is replaced by each block's input.",
    )
    max_tokens = serializers.IntegerField(
        min_value=1, max_value=128_000, default=1024,
        help_text="At most the model's output limit from the catalog (64,000 for claude-haiku-4-5).",
    )
    max_attempts = serializers.IntegerField(min_value=1, max_value=20, default=3)
    parallelism = serializers.IntegerField(min_value=1, max_value=1000, default=16,
                                           help_text="Most of the run's blocks in calls at once.")
    mode = serializers.ChoiceField(
        choices=RunMode.choices, default=RunMode.LIVE,
        help_text="live (calls as they go), batch (Message Batches: half price, results within a day, one "
                  "block per request), or auto (batch when `deadline` is at least a day away, else live).")
    deadline = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                         help_text="When the results are needed by (mode=auto).")
    priority = serializers.IntegerField(
        min_value=1, max_value=10, default=5,
        help_text="The run's weight against the same owner's other runs when capacity is short "
                  "(owners always share equally).")
    temperature = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True,
                                         default=None)
    webhook_url = TextField(
        max_length=2000, required=False, allow_blank=True, default="",
        help_text="Where a signed `run.finished` event is POSTed when each pass of the run ends "
                  "(Standard Webhooks; see webhooks/secret/). https and a public host, as a key's "
                  "base_url; your webhook secret must exist first.")
    retention_days = serializers.IntegerField(
        min_value=0, max_value=36500, required=False, allow_null=True, default=None,
        help_text="Days the run's text (inputs, outputs, attempt replies, dead-letter snapshots) is kept "
                  "after it ends; then it is purged, keeping counts, tokens, cost, timings and output "
                  "hashes. Null: the server's RUN_RETENTION_DAYS (unset: kept).")


class RunSettingsInputSerializer(RunSettingsSerializer):
    """A run's settings with its options as an object: what `manage.py submit` puts its command-line
    options through (its blocks come from a file), so that they are checked exactly as the API's."""

    options = RunOptionsSerializer(required=False)
    output_schema = JSONObjectField(required=False, allow_null=True, default=None,
                                    help_text=OUTPUT_SCHEMA_HELP)


class RunCreateInputSerializer(RunSettingsInputSerializer):
    """A run with its blocks inline."""

    # (many=True passes min_length to the ListSerializer; the stubs know only the child's arguments.)
    blocks = BlockInputSerializer(many=True, allow_empty=False, min_length=1)  # type: ignore[call-arg]


class RunUploadInputSerializer(RunSettingsSerializer):
    """A run with its blocks in a JSONL file; `options`, if given, is a JSON string."""

    file = serializers.FileField(
        allow_empty_file=False,
        help_text='JSONL: one block per line, `{"input": "...", "uid": "..."}` (uid optional).',
    )
    options = serializers.CharField(
        required=False, help_text='The options as a JSON object, e.g. `{"pack_size": 10, "cache": true}`.',
    )
    output_schema = serializers.CharField(required=False, help_text="The output schema as a JSON object. "
                                          + OUTPUT_SCHEMA_HELP)

    def validate_output_schema(self, value: str) -> dict[str, Any]:
        try:
            schema = json.loads(value)
        except (ValueError, RecursionError):
            raise serializers.ValidationError("Must be a JSON object.") from None
        if not isinstance(schema, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return schema

    def validate_options(self, value: str) -> dict[str, Any]:
        try:
            raw = json.loads(value)
        except (ValueError, RecursionError):
            raise serializers.ValidationError("Must be a JSON object.") from None
        if not isinstance(raw, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        options = RunOptionsSerializer(data=raw)
        options.is_valid(raise_exception=True)
        return options.validated_data


class ReseedInputSerializer(StrictSerializer):
    scope = serializers.ChoiceField(choices=[
        (PassScope.ALL.value, "every block"),
        (PassScope.FAILED.value, "only the failed blocks"),
        (PassScope.FILTER.value,
         "the blocks matching status, error_code, prompt_version and/or pipeline_version"),
    ])
    status = serializers.ChoiceField(choices=BlockStatus.choices, required=False)
    error_code = serializers.CharField(max_length=64, required=False)
    prompt_version = serializers.CharField(max_length=64, required=False)
    pipeline_version = serializers.CharField(
        max_length=32, required=False,
        help_text="The build whose results to take back (a block's pipeline_version is the build that "
                  "wrote its result).")
    model = serializers.CharField(max_length=100, required=False, help_text="Change the run's model.")
    system_prompt = serializers.CharField(max_length=PROMPT_MAX_CHARS, required=False, allow_blank=True,
                                          trim_whitespace=False)
    prompt_template = serializers.CharField(max_length=PROMPT_MAX_CHARS, required=False,
                                            trim_whitespace=False)


class RunBudgetInputSerializer(StrictSerializer):
    max_cost_usd = serializers.DecimalField(
        max_digits=12, decimal_places=4, min_value=Decimal("0.0001"), allow_null=True,
        help_text="The new budget in dollars, e.g. \"1.50\"; null removes the budget. A run paused by its "
                  "budget resumes if what the new budget leaves can pay for its next block's worst case "
                  "(otherwise it stays paused, its paused_reason saying how much that is).",
    )


class RunFilterSerializer(serializers.Serializer):
    team = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False,
                                    help_text="Only this team's runs.")
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    model = serializers.CharField(max_length=100, required=False)
    created_after = serializers.DateTimeField(required=False, help_text="Created at or after.")
    created_before = serializers.DateTimeField(required=False, help_text="Created before.")
    ordering = serializers.ChoiceField(choices=list(RUN_ORDERINGS), default="-created_at")


class BlockFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=BlockStatus.choices, required=False)
    error_code = serializers.CharField(max_length=64, required=False)


class RunCompareFilterSerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=50,
                                     help_text="The most uids listed in each list (counts are whole).")
