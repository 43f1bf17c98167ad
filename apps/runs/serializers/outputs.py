"""What the API answers for runs, blocks, attempts, results, progress and comparisons.

Each lists its fields explicitly, so that a new model field (or a key's secret) is never published by
accident. Their component names in the schema are their class names.
"""


from typing import Any, cast

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.lanes.selectors import lane_state, run_blocks_in_flight
from apps.lanes.serializers import LaneStateSerializer
from apps.runs.models import AttemptOutcome, BlockStatus, PassScope, PausedCause, Run, RunMode, RunStatus
from apps.runs.selectors import run_keys_usage, run_models_usage, run_waiting_reason
from apps.runs.serializers.inputs import DEFAULT_OPTIONS


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
    team = serializers.IntegerField(source="team_id", allow_null=True,
                                    help_text="The team the run belongs to; null: a personal run.")
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
    output_schema = serializers.JSONField(allow_null=True, help_text="The JSON Schema each answer must "
                                          "be a document of (structured outputs); null: free text.")
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
    """apps.runs.reporting.costs.Savings: from the run's recorded usage at the catalog's prices."""

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
    """apps.runs.reporting.costs.CacheStats."""

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
    `context["rate"]` is the blocks/s measured by the stream (apps.runs.reporting.live.RateWindow)."""

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


class RunKeyUsageSerializer(serializers.Serializer):
    key = serializers.IntegerField(help_text="The key's id (never its secret).")
    label = serializers.CharField()  # type: ignore[assignment]
    suffix = serializers.CharField(help_text="Its last four characters.")
    state = serializers.CharField(help_text="active, or left (refused by the provider, or unsafe).")
    left_cause = serializers.CharField(
        help_text="key_rejected, key_blocked or key_unsafe; empty while active.")
    left_reason = serializers.CharField()
    left_at = serializers.DateTimeField(allow_null=True)
    cache_warmed = serializers.BooleanField(help_text="Its workspace's cache holds the run's prefix.")
    calls = serializers.IntegerField()
    blocks_answered = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=16, decimal_places=8)
    cache_creation_input_tokens = serializers.IntegerField(
        help_text="Prefix tokens written to this key's cache: each key of a pool is warmed once.")
    cache_read_input_tokens = serializers.IntegerField()


class RunModelUsageSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="The model called (as the provider named it in its answer).")
    calls = serializers.IntegerField()
    blocks_answered = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=16, decimal_places=8,
                                        help_text="Priced at this model's prices.")


class RunDetailSerializer(RunSerializer, RunLiveStateSerializer):
    """A run with what it cost and saved; `context["cost"]` is its apps.runs.reporting.costs.CostReport."""

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
    keys = serializers.SerializerMethodField(
        help_text="The run's pool of keys, in order: state, calls, blocks answered, spend and cache "
                  "writes per key.")
    models = serializers.SerializerMethodField(
        help_text="Per model called (the primary, then fallbacks): calls, blocks answered, spend.")
    fallback_models = serializers.ListField(child=serializers.CharField(),
                                            help_text="Where a block moves on to, in order.")
    passes = RunPassSerializer(
        many=True, source="passes.all",
        help_text="The run's passes, oldest first: its submission (pass 1), then one per reseed or "
                  "replay of the ended run, each with how it ended.",
    )

    @extend_schema_field(BlockStatusCountsSerializer)
    def get_block_statuses(self, run: Run) -> dict[str, int]:
        return self.context["block_statuses"]

    @extend_schema_field(RunKeyUsageSerializer(many=True))
    def get_keys(self, run: Run) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], RunKeyUsageSerializer(run_keys_usage(run=run), many=True).data)

    @extend_schema_field(RunModelUsageSerializer(many=True))
    def get_models(self, run: Run) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], RunModelUsageSerializer(run_models_usage(run=run), many=True).data)

    @extend_schema_field(SavingsSerializer)
    def get_savings(self, run: Run) -> dict[str, Any]:
        return SavingsSerializer(self.context["cost"].savings.as_dict()).data

    @extend_schema_field(CacheStatsSerializer)
    def get_cache(self, run: Run) -> dict[str, Any]:
        return CacheStatsSerializer(self.context["cost"].cache.as_dict()).data

    @extend_schema_field(RunWarningSerializer(many=True))
    def get_warnings(self, run: Run) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], RunWarningSerializer(self.context["cost"].warnings, many=True).data)

class BlockSerializer(serializers.Serializer):
    uid = serializers.CharField()
    block_index = serializers.IntegerField()
    metadata = serializers.JSONField(allow_null=True, help_text="The block's own fields, as given.")
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
    output = serializers.SerializerMethodField(help_text="The reply of an accepted success.")
    output_json = serializers.SerializerMethodField(help_text="Its document, for a structured run.")
    created_at = serializers.DateTimeField()

    @staticmethod
    def _holder(attempt: Any) -> Any:
        """Where this attempt's reply is stored: the block while it is still the block's result
        (an output is stored once: Attempt.output holds only results a later pass superseded)."""
        block = attempt.block  # cached by the prefetch of the block's attempt_set
        current = (attempt.output is None and attempt.accepted and attempt.outcome == AttemptOutcome.SUCCEEDED
                   and attempt.pass_number == block.pass_number)
        return block if current else attempt

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_output(self, attempt: Any) -> str | None:
        return self._holder(attempt).output

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_output_json(self, attempt: Any) -> Any:
        return self._holder(attempt).output_json


class BlockDetailSerializer(BlockSerializer):
    input = serializers.CharField()
    output = serializers.CharField(allow_null=True)
    output_json = serializers.JSONField(
        allow_null=True, help_text="A structured run's answer as the JSON document it is (validated against "
                                   "the run's output_schema); null for free text or until it succeeds.")
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
    output_json = serializers.JSONField(allow_null=True, help_text="A structured run's document.")
    metadata = serializers.JSONField(allow_null=True, help_text="The block's own fields, as given.")
    error = ResultErrorSerializer(allow_null=True)
    attempts = serializers.IntegerField()
    usage = UsageSerializer()
    model = serializers.CharField()
    prompt_version = serializers.CharField()
    pass_number = serializers.IntegerField()


class FailureLineSerializer(serializers.Serializer):
    """One line of a run's failures export (documentation only: written without DRF)."""

    uid = serializers.CharField()
    block_index = serializers.IntegerField()
    metadata = serializers.JSONField(allow_null=True)
    error_code = serializers.CharField()
    error_message = serializers.CharField()
    http_status = serializers.IntegerField(allow_null=True)
    attempt_count = serializers.IntegerField()
    replay_count = serializers.IntegerField()
    state = serializers.ChoiceField(choices=["scheduled", "parked", "resolved"])
    failed_at = serializers.DateTimeField()
    next_retry_at = serializers.DateTimeField(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)
    resolution_note = serializers.CharField()
    raw_output = serializers.CharField(allow_null=True, help_text="The answer the run's schema refused (or "
                                       "the text a broken stream left), as received.")


# --- comparing two runs ------------------------------------------------------------------------------

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
    # (DRF's metaclass takes a declared field off the class: it does not hide Serializer.fields.)
    fields = serializers.DictField(child=FieldParitySerializer(),  # type: ignore[assignment]
                                   help_text="Field -> matches and differing uids: top-level keys, and for "
                                             "structured answers nested fields too (`author.name`).")
    fields_untracked = serializers.IntegerField(help_text="Pairs with fields beyond the first 100 names.")
    metadata = serializers.DictField(child=serializers.JSONField(), help_text="uid -> the block's metadata "
                                     "(from A, else B), for every uid listed above that has metadata.")
    by_models = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        help_text="\"A's model | B's model\" -> compared pairs and exact matches: how answers of a run's "
                  "fallback model compare with another run's primary model over the same blocks.")


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
