"""The API's shapes for runs, blocks, attempts and results.

Input serializers check types and ranges (so the schema documents them); the services remain the
authority and check again. Output serializers list their fields explicitly, so that a new model field
(or a key's secret) is never published by accident."""

import json
from decimal import Decimal
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.lanes.selectors import lane_state, run_blocks_in_flight
from apps.lanes.serializers import LaneStateSerializer
from apps.runs.models import AttemptOutcome, BlockStatus, PassScope, PausedCause, Run, RunMode, RunStatus
from apps.runs.selectors import RUN_ORDERINGS, run_waiting_reason

PROMPT_MAX_CHARS = 500_000
DEFAULT_OPTIONS: dict[str, Any] = {"cache": False, "cache_ttl": "5m", "pack_size": 1, "stream": False,
                                   "max_cost_usd": None}


def _reject_unknown(serializer: serializers.Serializer, data: Any) -> None:
    if isinstance(data, dict):
        unknown = sorted(set(data) - set(serializer.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})


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


# --- input -----------------------------------------------------------------------------------------

class RunOptionsSerializer(serializers.Serializer):
    cache = serializers.BooleanField(default=False, help_text="Cache the stable prompt prefix.")
    cache_ttl = serializers.ChoiceField(choices=["5m", "1h"], default="5m")
    pack_size = serializers.IntegerField(min_value=1, max_value=50, default=1,
                                         help_text="Blocks sent together in one call.")
    stream = serializers.BooleanField(default=False)
    max_cost_usd = serializers.DecimalField(
        max_digits=12, decimal_places=4, min_value=Decimal("0.0001"), required=False, allow_null=True,
        default=None, help_text="The run pauses once it has spent this much.",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        _reject_unknown(self, data)
        return super().to_internal_value(data)


def stored_options(validated: dict[str, Any] | None) -> dict[str, Any]:
    """Options as stored on the run: every default spelled out, JSON-safe, no budget if none."""
    options = {**DEFAULT_OPTIONS, **(validated or {})}
    budget = options.pop("max_cost_usd")
    if budget is not None:
        options["max_cost_usd"] = str(budget)
    return options


class BlockInputSerializer(serializers.Serializer):
    uid = UidField(max_length=200, required=False,
                   help_text="Unique within the run; defaults to line-N (N from 1). No control characters.")
    input = TextField(trim_whitespace=False)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        _reject_unknown(self, data)
        return super().to_internal_value(data)


class RunSettingsSerializer(serializers.Serializer):
    """The fields shared by an inline create and an upload."""

    key = serializers.IntegerField(min_value=1, max_value=2**63 - 1,
                                   help_text="Id of one of your provider keys. A key whose last "
                                             "validation failed is refused (409 key_invalid).")
    model = TextField(max_length=100, help_text="A model id from the catalog.")
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

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        # A misspelt setting (`prallelism`) must not silently fall back to its default.
        _reject_unknown(self, data)
        return super().to_internal_value(data)


class RunSettingsInputSerializer(RunSettingsSerializer):
    """A run's settings with its options as an object: what `manage.py submit` puts its command-line
    options through (its blocks come from a file), so that they are checked exactly as the API's."""

    options = RunOptionsSerializer(required=False)


class RunCreateInputSerializer(RunSettingsInputSerializer):
    """A run with its blocks inline."""

    blocks = BlockInputSerializer(many=True, allow_empty=False, min_length=1)


class RunUploadInputSerializer(RunSettingsSerializer):
    """A run with its blocks in a JSONL file; `options`, if given, is a JSON string."""

    file = serializers.FileField(
        allow_empty_file=False,
        help_text='JSONL: one block per line, `{"input": "...", "uid": "..."}` (uid optional).',
    )
    options = serializers.CharField(
        required=False, help_text='The options as a JSON object, e.g. `{"pack_size": 10, "cache": true}`.',
    )

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


class ReseedInputSerializer(serializers.Serializer):
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

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        _reject_unknown(self, data)
        return super().to_internal_value(data)


class RunBudgetInputSerializer(serializers.Serializer):
    max_cost_usd = serializers.DecimalField(
        max_digits=12, decimal_places=4, min_value=Decimal("0.0001"), allow_null=True,
        help_text="The new budget in dollars, e.g. \"1.50\"; null removes the budget. A run paused because "
                  "its budget was spent resumes if the new budget is above what it has spent.",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        _reject_unknown(self, data)
        return super().to_internal_value(data)


class RunFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    model = serializers.CharField(max_length=100, required=False)
    created_after = serializers.DateTimeField(required=False, help_text="Created at or after.")
    created_before = serializers.DateTimeField(required=False, help_text="Created before.")
    ordering = serializers.ChoiceField(choices=list(RUN_ORDERINGS), default="-created_at")


class BlockFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=BlockStatus.choices, required=False)
    error_code = serializers.CharField(max_length=64, required=False)


# --- output ----------------------------------------------------------------------------------------

class UsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_creation_input_tokens = serializers.IntegerField()
    cache_read_input_tokens = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=16, decimal_places=8)


class RunCountsSerializer(serializers.Serializer):
    """Kept by the engine in the same transaction as each result, so exact at every moment."""

    total = serializers.IntegerField(source="total_blocks")
    succeeded = serializers.IntegerField(source="completed_blocks")
    failed = serializers.IntegerField(source="failed_blocks")
    canceled = serializers.IntegerField(source="canceled_blocks")
    remaining = serializers.SerializerMethodField()

    def get_remaining(self, run: Run) -> int:
        return run.total_blocks - run.terminal_blocks


class RunOptionsOutputSerializer(serializers.Serializer):
    cache = serializers.BooleanField()
    cache_ttl = serializers.CharField()
    pack_size = serializers.IntegerField()
    stream = serializers.BooleanField()
    max_cost_usd = serializers.DecimalField(max_digits=12, decimal_places=4, allow_null=True)

    def to_representation(self, instance: dict[str, Any]) -> dict[str, Any]:
        return super().to_representation({**DEFAULT_OPTIONS, **(instance or {})})


class RunSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    owner = serializers.CharField(source="owner.get_username")
    key = serializers.IntegerField(source="key_id", allow_null=True,
                                   help_text="The provider key's id (never its secret); null once deleted.")
    status = serializers.ChoiceField(choices=RunStatus.choices)
    paused_cause = serializers.ChoiceField(
        choices=[("", "not paused"), *PausedCause.choices],
        help_text="Why a paused run is paused: key_rejected resumes by itself when the key validates "
                  "again, budget when the budget is raised (budget/); the others by hand (resume/).",
    )
    paused_reason = serializers.CharField()
    model = serializers.CharField()
    system_prompt = serializers.CharField()
    prompt_template = serializers.CharField()
    max_tokens = serializers.IntegerField()
    temperature = serializers.FloatField(allow_null=True)
    max_attempts = serializers.IntegerField()
    parallelism = serializers.IntegerField()
    priority = serializers.IntegerField()
    mode = serializers.ChoiceField(choices=RunMode.choices, help_text="What was asked for.")
    effective_mode = serializers.ChoiceField(choices=[(RunMode.LIVE.value, "live"),
                                                      (RunMode.BATCH.value, "batch")],
                                             help_text="What the run uses (auto resolved).")
    mode_reason = serializers.CharField(help_text="Why, for mode=auto (and its saving).")
    deadline = serializers.DateTimeField(allow_null=True)
    batch_cost_usd = serializers.DecimalField(max_digits=16, decimal_places=8,
                                              help_text="Of the cost, what went through batches.")
    packing = serializers.SerializerMethodField(
        help_text="initial_pack_count (packs formed from claims), packs_processed (pack calls, splits "
                  "included), split_events, avg_blocks_per_pack.")
    cache_warmed = serializers.BooleanField(
        help_text="A cacheable run's first call has answered, so the rest fan out on a warm cache.")

    def get_packing(self, run: Run) -> dict[str, float]:
        return {"initial_pack_count": run.initial_pack_count, "packs_processed": run.packs_processed,
                "split_events": run.split_events, "avg_blocks_per_pack": run.avg_blocks_per_pack}
    options = RunOptionsOutputSerializer()
    counts = RunCountsSerializer(source="*")
    progress = serializers.FloatField(help_text="Share of blocks in a terminal state, 0 to 1.")
    usage = UsageSerializer(source="*", help_text="Every call, accepted or not, across all passes.")
    reserved_usd = serializers.DecimalField(
        max_digits=16, decimal_places=8,
        help_text="The worst-case cost of the calls in flight, held against the budget until they end.")
    estimate = serializers.JSONField(help_text="The preflight estimate made at submission (see "
                                               "runs/estimate/).")
    pipeline_version = serializers.CharField()
    prompt_version = serializers.CharField()
    current_pass = serializers.IntegerField()
    webhook_url = serializers.CharField(help_text="Where each pass's `run.finished` event is POSTed; "
                                                  "empty: none (deliveries: webhooks/deliveries/?run=).")
    idempotency_key = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.SerializerMethodField(
        help_text="From start to finish, or to now while the run is unfinished; null before it starts."
    )

    def get_duration_seconds(self, run: Run) -> float | None:
        if run.started_at is None:
            return None
        return round(((run.finished_at or timezone.now()) - run.started_at).total_seconds(), 3)


class BlockStatusCountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    claimed = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    canceled = serializers.IntegerField()


class RunPassFilterSerializer(serializers.Serializer):
    status = serializers.ListField(child=serializers.ChoiceField(choices=BlockStatus.choices),
                                   required=False)
    error_code = serializers.CharField(required=False)
    prompt_version = serializers.CharField(required=False)


class RunPassSerializer(serializers.Serializer):
    """One pass over the run: what it took back to pending, with which model and prompt, and the
    run's counts when it began."""

    number = serializers.IntegerField()
    scope = serializers.ChoiceField(choices=PassScope.choices)
    filter = RunPassFilterSerializer()
    model = serializers.CharField()
    system_prompt = serializers.CharField()
    prompt_template = serializers.CharField()
    prompt_version = serializers.CharField()
    pipeline_version = serializers.CharField()
    selected_blocks = serializers.IntegerField()
    prior_completed_blocks = serializers.IntegerField()
    prior_failed_blocks = serializers.IntegerField()
    prior_canceled_blocks = serializers.IntegerField()
    prior_cost_usd = serializers.DecimalField(max_digits=16, decimal_places=8)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True, help_text="When this pass ended.")
    ended_status = serializers.CharField(help_text="complete or canceled; empty while it runs.")
    completed_blocks = serializers.IntegerField(allow_null=True, help_text="The run's counts when "
                                                "this pass ended (kept as they were).")
    failed_blocks = serializers.IntegerField(allow_null=True)
    canceled_blocks = serializers.IntegerField(allow_null=True)
    cost_usd = serializers.DecimalField(max_digits=16, decimal_places=8, allow_null=True,
                                        help_text="The run's cost when this pass ended.")


class SavingsSerializer(serializers.Serializer):
    """apps.runs.costs.Savings: from the run's recorded usage at the catalog's prices."""

    cost_usd = serializers.DecimalField(max_digits=16, decimal_places=8,
                                        help_text="What the run's calls cost (every attempt, every pass).")
    without_caching_usd = serializers.DecimalField(
        max_digits=16, decimal_places=8,
        help_text="The same calls with every cache write and read billed as plain input.")
    without_caching_or_packing_usd = serializers.DecimalField(
        max_digits=16, decimal_places=8,
        help_text="That, with each block of a packed call in a call of its own carrying the prefix.")
    at_live_prices_usd = serializers.DecimalField(
        max_digits=16, decimal_places=8,
        help_text="The same usage at standard prices: for a batch-mode run what live calls would have "
                  "cost; for a live run, the cost itself.")
    caching_saved_usd = serializers.DecimalField(max_digits=16, decimal_places=8)
    packing_saved_usd = serializers.DecimalField(max_digits=16, decimal_places=8)
    batch_saved_usd = serializers.DecimalField(max_digits=16, decimal_places=8)
    packing_measured = serializers.BooleanField(
        help_text="False when nothing was cached: packing is measured on the cached prefix, so its "
                  "saving then reads as 0 rather than unknown.")
    batch = serializers.BooleanField(help_text="The run's calls went through the Message Batches API; "
                                               "the other figures are then at batch prices.")


class CacheStatsSerializer(serializers.Serializer):
    """apps.runs.costs.CacheStats."""

    caching = serializers.BooleanField()
    hit_rate = serializers.FloatField(
        allow_null=True,
        help_text="read / (read + written + missed) tokens of the cacheable prefix, 0 to 1; `missed` is "
                  "the prefix of calls that neither wrote nor read the cache, at its estimated size (4 "
                  "characters per token). Null before any answered call, or with nothing cacheable.")
    read_tokens = serializers.IntegerField()
    written_tokens = serializers.IntegerField()
    missed_tokens = serializers.IntegerField()
    cacheable_tokens = serializers.IntegerField()
    calls = serializers.IntegerField(help_text="Answered provider calls.")
    not_hitting = serializers.BooleanField(
        help_text="Caching on, yet no cache read after several calls sent after the first reply.")


class RunWarningSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=[
        ("cache_prefix_too_short", "caching on, prefix under the model's minimum (at create)"),
        ("cache_not_hitting", "caching on, no cache read after several calls (from the usage)"),
    ])
    message = serializers.CharField()
    prefix_tokens = serializers.IntegerField(required=False, help_text="cache_prefix_too_short: the "
                                             "estimated prefix (4 characters per token).")
    min_cache_tokens = serializers.IntegerField(required=False)
    missing_tokens = serializers.IntegerField(required=False)
    calls_after_first = serializers.IntegerField(required=False, help_text="cache_not_hitting.")


class RunLiveStateSerializer(serializers.Serializer):
    """What moves while a run works, read from Redis and the open blocks: the run's page (detail) and
    its live progress (events/) show the same."""

    waiting_reason = serializers.SerializerMethodField(
        help_text="Why the run is not moving, in words (paused and why, its key's lane throttled or "
                  "overloaded until when, retries waiting); null when nothing holds it back.")
    in_flight = serializers.SerializerMethodField(
        help_text="Its blocks in provider calls now, on every worker (its share of the capacity).")
    lane = serializers.SerializerMethodField(
        help_text="The lane its calls go through (its key and model's rate-limit group): limits and "
                  "where they came from, current rate, calls in flight, window, throttled until.")

    def get_waiting_reason(self, run: Run) -> str | None:
        return run_waiting_reason(run)

    def get_in_flight(self, run: Run) -> int | None:
        return run_blocks_in_flight(run_id=run.pk)

    @extend_schema_field(LaneStateSerializer(allow_null=True))
    def get_lane(self, run: Run) -> dict[str, Any] | None:
        state = lane_state(key=run.key, model=run.model) if run.key is not None else None
        return LaneStateSerializer(state).data if state is not None else None


class RunProgressSerializer(RunLiveStateSerializer):
    """One live progress event (runs/{id}/events/): counts, rate, cost and lane state.
    `context["rate"]` is the blocks/s measured by the stream (apps.runs.live.RateWindow)."""

    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    paused_cause = serializers.ChoiceField(choices=[("", "not paused"), *PausedCause.choices])
    current_pass = serializers.IntegerField()
    counts = RunCountsSerializer(source="*")
    progress = serializers.FloatField(help_text="Share of blocks in a terminal state, 0 to 1.")
    rate = serializers.SerializerMethodField(
        help_text="Blocks reaching a terminal state per second, over about the last "
                  "RATE_WINDOW_SECONDS (10 s); null until the stream has watched the run for a moment.")
    cost_usd = serializers.DecimalField(max_digits=16, decimal_places=8,
                                        help_text="Every call so far, accepted or not, across all passes.")
    reserved_usd = serializers.DecimalField(max_digits=16, decimal_places=8,
                                            help_text="Held against the budget for the calls in flight.")
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_rate(self, run: Run) -> float | None:
        return self.context.get("rate")


class RunDetailSerializer(RunSerializer, RunLiveStateSerializer):
    """A run with what it cost and saved; `context["cost"]` is its apps.runs.costs.CostReport."""

    block_statuses = serializers.SerializerMethodField(
        help_text="Blocks per status, counted from the blocks themselves."
    )
    savings = serializers.SerializerMethodField(
        help_text="What the run cost, and what the same usage would have cost without caching, without "
                  "caching or packing, and at live prices: priced from recorded usage, not estimated.")
    cache = serializers.SerializerMethodField(help_text="The cache's hit rate and the no-hit flag.")
    warnings = serializers.SerializerMethodField(
        help_text="Stored at create (cache_prefix_too_short), then found in the usage since "
                  "(cache_not_hitting).")
    passes = RunPassSerializer(
        many=True, source="passes.all",
        help_text="The run's passes, oldest first: its submission (pass 1), then one per reseed or "
                  "replay of the ended run, each with how it ended.",
    )

    @extend_schema_field(BlockStatusCountsSerializer)
    def get_block_statuses(self, run: Run) -> dict[str, int]:
        return self.context["block_statuses"]

    @extend_schema_field(SavingsSerializer)
    def get_savings(self, run: Run) -> dict[str, Any]:
        return SavingsSerializer(self.context["cost"].savings.as_dict()).data

    @extend_schema_field(CacheStatsSerializer)
    def get_cache(self, run: Run) -> dict[str, Any]:
        return CacheStatsSerializer(self.context["cost"].cache.as_dict()).data

    @extend_schema_field(RunWarningSerializer(many=True))
    def get_warnings(self, run: Run) -> list[dict[str, Any]]:
        return RunWarningSerializer(self.context["cost"].warnings, many=True).data

class BlockSerializer(serializers.Serializer):
    uid = serializers.CharField()
    block_index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=BlockStatus.choices)
    attempt_count = serializers.IntegerField(source="attempts", help_text="Claims in the current pass.")
    error_code = serializers.CharField()
    error_message = serializers.CharField()
    latency_ms = serializers.IntegerField(allow_null=True)
    usage = UsageSerializer(source="*")
    model = serializers.CharField()
    pipeline_version = serializers.CharField()
    prompt_version = serializers.CharField()
    pass_number = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    pass_number = serializers.IntegerField()
    outcome = serializers.ChoiceField(choices=AttemptOutcome.choices)
    accepted = serializers.BooleanField(help_text="False if the result arrived after the lease was lost.")
    http_status = serializers.IntegerField(allow_null=True)
    error_code = serializers.CharField()
    error_message = serializers.CharField()
    request_id = serializers.CharField()
    latency_ms = serializers.IntegerField(allow_null=True)
    model = serializers.CharField()
    usage = UsageSerializer(source="*")
    output = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class BlockDetailSerializer(BlockSerializer):
    input = serializers.CharField()
    output = serializers.CharField(allow_null=True)
    attempts = AttemptSerializer(source="attempt_set", many=True)


class ResultErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class ResultLineSerializer(serializers.Serializer):
    """One line of the JSONL export (documentation only: the export is written without DRF)."""

    uid = serializers.CharField()
    block_index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=BlockStatus.choices)
    output = serializers.CharField(allow_null=True)
    error = ResultErrorSerializer(allow_null=True)
    attempts = serializers.IntegerField()
    usage = UsageSerializer()
    model = serializers.CharField()
    prompt_version = serializers.CharField()
    pass_number = serializers.IntegerField()


# --- comparing two runs ------------------------------------------------------------------------------

class RunCompareFilterSerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=50,
                                     help_text="The most uids listed in each list (counts are whole).")


class UidListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    uids = serializers.ListField(child=serializers.CharField(), help_text="The first `limit`, in A's order.")
    truncated = serializers.BooleanField()


class FieldParitySerializer(serializers.Serializer):
    matches = serializers.IntegerField()
    differs = UidListSerializer(help_text="Pairs where the field differs or is on one side only.")


class ParitySerializer(serializers.Serializer):
    compared = serializers.IntegerField(help_text="uids in both runs, succeeded in both.")
    exact_matches = serializers.IntegerField(help_text="Compared pairs with the same output text.")
    mismatches = UidListSerializer()
    not_compared = UidListSerializer(help_text="In both runs, not succeeded in one or both.")
    only_in_a = UidListSerializer()
    only_in_b = UidListSerializer()
    identical = serializers.BooleanField(help_text="Every uid in both, succeeded in both, same output.")
    json_objects = serializers.IntegerField(help_text="Compared pairs whose outputs both parse as "
                                                      "JSON objects: their fields are compared below.")
    fields = serializers.DictField(child=FieldParitySerializer(),
                                   help_text="Top-level field -> matches and differing uids.")
    fields_untracked = serializers.IntegerField(help_text="Pairs with fields beyond the first 100 names.")


class CompareBlocksSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    canceled = serializers.IntegerField()


class CompareTokensSerializer(serializers.Serializer):
    input = serializers.IntegerField()
    output = serializers.IntegerField()
    cache_write = serializers.IntegerField()
    cache_read = serializers.IntegerField()


class CompareSideSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    model = serializers.CharField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    cache = serializers.BooleanField()
    pack_size = serializers.IntegerField()
    mode = serializers.CharField(help_text="live, or batch (the Message Batches API).")
    blocks = CompareBlocksSerializer()
    cost_usd = serializers.DecimalField(max_digits=16, decimal_places=8)
    cost_per_block_usd = serializers.DecimalField(max_digits=16, decimal_places=8, allow_null=True,
                                                  help_text="Cost per succeeded block.")
    tokens = CompareTokensSerializer()
    cache_hit_rate = serializers.FloatField(allow_null=True, help_text="See the run detail's `cache`.")
    cache_not_hitting = serializers.BooleanField()
    calls = serializers.IntegerField(help_text="Provider calls (a packed call is one).")
    calls_not_succeeded = serializers.IntegerField()
    attempts = serializers.IntegerField(help_text="Attempt rows: one per block per call.")
    savings = SavingsSerializer()


class RunCompareSerializer(serializers.Serializer):
    a = CompareSideSerializer()
    b = CompareSideSerializer()
    cost_ratio = serializers.FloatField(allow_null=True, help_text="B's cost / A's cost.")
    parity = ParitySerializer()
