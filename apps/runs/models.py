import uuid
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.keys.models import ProviderKey
from apps.providers.catalog import priciest_model
from apps.providers.prompts import CallSpec
from apps.providers.structured import schema_of
from apps.runs.batching.transitions import MessageBatchQuerySet, MessageBatchStatus
from apps.runs.transitions import (
    RUN_USING_KEY,
    BlockQuerySet,
    BlockStatus,
    PausedCause,
    RunQuerySet,
    RunStatus,
)
from apps.teams.access import AccessRule


class RunMode(models.TextChoices):
    LIVE = "live", "Live calls"
    BATCH = "batch", "Message Batches (half price, within a day)"
    AUTO = "auto", "Batch when the deadline allows, else live"

__all__ = ["Attempt", "AttemptOutcome", "Block", "BlockStatus", "MessageBatch", "MessageBatchStatus",
           "PassScope", "PausedCause", "Run", "RunKey", "RunKeyState", "RunMode", "RunPass", "RunStatus"]


class Usage(models.Model):
    """Token usage and cost, accumulated (never overwritten) on runs, blocks and attempts."""

    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_creation_input_tokens = models.BigIntegerField(default=0)
    cache_read_input_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)

    class Meta:
        abstract = True


class Reserved(models.Model):
    """Money reserved for calls in flight: their worst case, before they start (the budget cap)."""

    reserved_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)

    class Meta:
        abstract = True


# Made at module level, where django-stubs reads it (a call in the class statement is opaque to it).
_RunManagerBase = models.Manager.from_queryset(RunQuerySet)


class RunManager(_RunManagerBase):
    def using_key(self) -> RunQuerySet:
        """Runs that may still call the provider with their key, which therefore cannot be deleted.
        The keys app asks through a key's reverse relation (`key.runs.using_key()`): it sits below the
        run engine and does not import it."""
        return self.filter(status__in=RUN_USING_KEY)


class Run(Usage, Reserved):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    access = AccessRule(noun="run")

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="runs")
    # The team the run belongs to; empty: its owner's alone (apps/teams/access.py says who may do what).
    # PROTECT: a team goes only after its runs (the team deletion removes them first, in batches).
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, null=True, blank=True,
                             related_name="runs")
    # SET_NULL: a user must be able to delete a leaked key outright; finished runs keep their history.
    # (Deleting a key that an active run uses is refused by apps.keys.services.key_delete, which asks
    # `key.runs.using_key()`.)
    key = models.ForeignKey(ProviderKey, on_delete=models.SET_NULL, null=True, related_name="runs")
    name = models.CharField(max_length=200, blank=True, default="")
    model = models.CharField(max_length=100)
    # Models a block moves on to, in order, when the one it is on cannot serve it (not found or not
    # permitted, overloaded past options.fallback_overload_seconds, or, with
    # options.fallback_on_invalid_output, an answer its checks refused on every attempt). Only these.
    fallback_models = models.JSONField(default=list, blank=True)
    # Bumped whenever a key leaves or rejoins the run's pool (RunKey): serving loops reload the run's
    # keys when it changes.
    pool_revision = models.PositiveIntegerField(default=0)
    system_prompt = models.TextField(blank=True, default="")
    # `{input}` is replaced by the block's input; the rest is the stable, cacheable instruction.
    prompt_template = models.TextField(default="{input}")
    max_tokens = models.PositiveIntegerField(default=1024)
    # Optional sampling: the 2026-10-21 API version rejects these, so nothing sends them by default.
    temperature = models.FloatField(null=True, blank=True)
    # A JSON Schema for each block's answer (structured outputs, apps.providers.structured): sent as
    # `output_config.format` on every call, each answer validated against it. Empty: free text. Kept as
    # the JSON text given (jsonb would reorder its keys, and the model writes properties in their order).
    output_schema_text = models.TextField(blank=True, default="")
    max_attempts = models.PositiveSmallIntegerField(default=3)
    # Most of this run's blocks in provider calls at once, across all workers.
    parallelism = models.PositiveIntegerField(default=16)
    # Its weight in fair share against the owner's other runs when capacity is short (1 to 10).
    priority = models.PositiveSmallIntegerField(default=5)
    # The preflight estimate made at submission (apps.runs.estimates.RunEstimate.as_dict).
    estimate = models.JSONField(default=dict, blank=True)
    # live: calls as they go (the serving loop); batch: the provider's Message Batches API, half the
    # price, results within a day (apps/runs/batching/); auto: chosen from `deadline` at submission.
    mode = models.CharField(max_length=8, choices=RunMode.choices, default=RunMode.LIVE)
    # What the run actually uses (auto resolves to live or batch), and why.
    effective_mode = models.CharField(max_length=8, choices=RunMode.choices, default=RunMode.LIVE)
    mode_reason = models.CharField(max_length=300, blank=True, default="")
    deadline = models.DateTimeField(null=True, blank=True)
    # Of cost_usd, what was spent through batches (billed at half the live price).
    batch_cost_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)
    # Packing, as the origin system counted it: packs formed from claims, pack calls made (splits
    # included), splits of a pack whose reply overflowed or mis-mapped, and blocks sent in packs.
    initial_pack_count = models.PositiveIntegerField(default=0)
    packs_processed = models.PositiveIntegerField(default=0)
    split_events = models.PositiveIntegerField(default=0)
    packed_blocks = models.PositiveIntegerField(default=0)
    # A cacheable run's first call goes alone; the rest follow once it has answered (and so written
    # the prefix to the cache), so a run of parallelism 16 writes its prefix once, not 16 times.
    cache_warmed = models.BooleanField(default=False)
    # The cacheable prefix that warm-up wrote (apps.runs.caching.prefix_sha256): a new pass whose
    # prefix differs (another prompt or model), or whose cache has expired, warms again.
    cache_prefix_sha256 = models.CharField(max_length=64, blank=True, default="")
    # What the run was warned about at create, e.g. caching on with a prefix under the model's minimum
    # (apps.runs.caching.prefix_warnings): [{"code", "message", ...}]. Warnings found later, from
    # the run's usage, are computed when read (apps.runs.reporting.costs.run_warnings), never stored.
    warnings = models.JSONField(default=list, blank=True)
    # Engine options: {"cache", "cache_ttl", "pack_size", "stream", "max_cost_usd"}; see
    # apps.runs.serializers.inputs.RunOptionsSerializer for what each means.
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    # Why a paused run is paused (decides what resumes it); the reason is the human-readable detail.
    paused_cause = models.CharField(max_length=16, choices=PausedCause.choices, blank=True, default="")
    paused_reason = models.TextField(blank=True, default="")
    total_blocks = models.PositiveIntegerField(default=0)
    # A pipeline step that an earlier step may still hand blocks to (apps.pipelines): it does not
    # complete while held, even with no block open; the pipeline releases it once no item can reach it.
    held_open = models.BooleanField(default=False)
    completed_blocks = models.PositiveIntegerField(default=0)
    failed_blocks = models.PositiveIntegerField(default=0)
    canceled_blocks = models.PositiveIntegerField(default=0)
    # Version stamp: which code and which prompt produced the results (targets for reseeding).
    pipeline_version = models.CharField(max_length=32)
    prompt_version = models.CharField(max_length=64)
    # Each reseed starts a new pass over the same run; attempts keep the history of every pass.
    current_pass = models.PositiveIntegerField(default=1)
    # NULL, not "", when absent: the unique constraint must ignore runs created without one.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    # sha256 of the create request that made the run (its settings and every block, or the uploaded
    # file and the form fields): the same Idempotency-Key with another body is refused, not answered
    # with this run. Empty for runs created without a request to compare (the command line).
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    # Where a signed `run.finished` event is POSTed when each pass ends (apps/webhooks/); empty: none.
    # Checked with the base_url address rules at create and again on the connection of every delivery.
    webhook_url = models.CharField(max_length=2000, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # How many days after it ended the run's text is kept (inputs, outputs, attempt bodies, dead-letter
    # snapshots, diagnostic payloads); NULL: the RUN_RETENTION_DAYS default (unset: kept). Counts,
    # tokens, cost, timings and hashes stay (apps/runs/services/retention.py).
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    # When the retention purge emptied the run's text; NULL: not purged.
    purged_at = models.DateTimeField(null=True, blank=True)
    # Set when a person asked for the run to be deleted: it is gone from every list at once, and a
    # background task deletes its rows in batches, then the run (apps/runs/services/deletion.py).
    deleting_at = models.DateTimeField(null=True, blank=True)

    objects = RunManager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=RunStatus.values), name="run_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(paused_cause__in=["", *PausedCause.values]), name="run_paused_cause_valid"
            ),
            models.CheckConstraint(condition=Q(priority__gte=1, priority__lte=10),
                                   name="run_priority_in_range"),
            models.CheckConstraint(condition=Q(reserved_usd__gte=0), name="run_reserved_not_negative"),
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="run_idempotency_key_unique_per_owner",
            ),
        ]
        indexes = [
            models.Index(fields=["status"], name="run_status_idx"),
            models.Index(fields=["owner", "-created_at"], name="run_owner_created_idx"),
        ]

    def __str__(self) -> str:
        return self.name or str(self.id)

    @property
    def terminal_blocks(self) -> int:
        return self.completed_blocks + self.failed_blocks + self.canceled_blocks

    @property
    def progress(self) -> float:
        return self.terminal_blocks / self.total_blocks if self.total_blocks else 1.0

    @property
    def avg_blocks_per_pack(self) -> float:
        return round(self.packed_blocks / self.packs_processed, 2) if self.packs_processed else 0.0

    @property
    def pack_size(self) -> int:
        """Blocks per call. A run in batch mode sends one block per request."""
        if self.effective_mode == RunMode.BATCH:
            return 1
        return int((self.options or {}).get("pack_size", 1))

    @property
    def in_batch_mode(self) -> bool:
        return self.effective_mode == RunMode.BATCH

    @property
    def call_spec(self) -> CallSpec:
        """Everything about the run that shapes its provider calls."""
        options = self.options or {}
        return CallSpec(
            model=self.model, system_prompt=self.system_prompt, prompt_template=self.prompt_template,
            max_tokens=self.max_tokens, temperature=self.temperature,
            cache=bool(options.get("cache", False)), cache_ttl=options.get("cache_ttl", "5m"),
            stream=bool(options.get("stream", False)),
            output_schema=self.output_schema_text,
        )

    @property
    def budget_spec(self) -> CallSpec:
        """The call spec a budget reserves by: the most expensive of the run's models (a block may
        move to any of them), so the budget holds whichever model answers."""
        return replace(self.call_spec, model=priciest_model(self.models))

    @property
    def models(self) -> list[str]:
        """The primary model, then the fallbacks in order: a block's `model_index` points in here."""
        return [self.model, *(self.fallback_models or [])]

    @property
    def output_schema(self) -> dict[str, Any] | None:
        """The output schema as a JSON object (shared: never modify it), or None for free text."""
        return schema_of(self.output_schema_text) if self.output_schema_text else None


class Block(Usage, Reserved):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="blocks")
    block_index = models.PositiveIntegerField()
    uid = models.CharField(max_length=200)
    input = models.TextField()
    # The user's own JSON object (record ids, fields to join on; at most 8 KB), returned with the block
    # everywhere and sent to the model only where the template names a field (`{metadata.title}`).
    metadata = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=BlockStatus.choices, default=BlockStatus.PENDING)
    # Claims made this pass; bounded by run.max_attempts (a crash mid-call counts too).
    attempts = models.PositiveSmallIntegerField(default=0)
    # 429/529 waits: not the block's fault, so not attempts; bounded by MAX_THROTTLE_WAITS.
    throttle_waits = models.PositiveIntegerField(default=0)
    # Which of the run's models (Run.models) the block is on: 0 the primary, then its fallbacks.
    model_index = models.PositiveSmallIntegerField(default=0)
    # Since when its calls on that model have come back overloaded (529), without an answer between:
    # past options.fallback_overload_seconds it moves to the next model.
    overloaded_since = models.DateTimeField(null=True, blank=True)
    # Calls claimed for it in the current pass, never given back (unlike `attempts`, the budget a
    # replay refills): what numbers its Attempt rows, so a pass never shows two "attempt 1".
    pass_attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=200, blank=True, default="")
    # NULL until the block succeeds: an empty reply is a real (if odd) result.
    output = models.TextField(null=True, blank=True)  # noqa: DJ001
    # A structured run's answer as the JSON document it is (validated against the run's schema), beside
    # its text in `output`: queryable (`output_json__label="spam"`), exported as fields.
    output_json = models.JSONField(null=True, blank=True)
    # sha256 (hex) of `output`, written with it: what compare reads once a retention purge has emptied
    # the text ("same answer" still holds for purged runs). Empty until the block succeeds.
    output_sha256 = models.CharField(max_length=64, blank=True, default="")
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # Version stamp of the result.
    model = models.CharField(max_length=100, blank=True, default="")
    pipeline_version = models.CharField(max_length=32, blank=True, default="")
    prompt_version = models.CharField(max_length=64, blank=True, default="")
    pass_number = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = BlockQuerySet.as_manager()

    class Meta:
        ordering = ["run", "block_index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "uid"], name="block_uid_unique_per_run"),
            models.UniqueConstraint(fields=["run", "block_index"], name="block_index_unique_per_run"),
            models.CheckConstraint(
                condition=Q(status__in=BlockStatus.values), name="block_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status=BlockStatus.CLAIMED) | Q(lease_token__isnull=False),
                name="claimed_block_has_lease",
            ),
        ]
        indexes = [
            # The claim: due pending blocks of a run in block_index order.
            models.Index(
                fields=["run", "block_index"],
                condition=Q(status="pending"),
                name="block_pending_idx",
            ),
            # The pump: leases that have expired.
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status="claimed"),
                name="block_claimed_lease_idx",
            ),
            models.Index(fields=["run", "status"], name="block_run_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.uid}"


class AttemptOutcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    RETRY = "retry", "Retryable error"
    THROTTLED = "throttled", "Throttled (429/529)"
    KEY_REJECTED = "key_rejected", "Key rejected (401/403)"
    FAILED = "failed", "Failed"
    LEASE_EXPIRED = "lease_expired", "Lease expired (worker lost)"
    BUDGET_WAIT = "budget_wait", "Not called: waiting for the budget"


class MessageBatch(models.Model):
    """One Message Batch at the provider: the blocks of one claim (its lease token fences the
    results), submitted once, polled by beat until it ends, its results streamed into the same
    outcome path as live calls."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="batches")
    key = models.ForeignKey(ProviderKey, on_delete=models.SET_NULL, null=True, related_name="batches")
    provider_batch_id = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(max_length=16, choices=MessageBatchStatus.choices,
                              default=MessageBatchStatus.SUBMITTING)
    lease_token = models.UUIDField()
    requests = models.PositiveIntegerField(default=0)
    blocks = models.PositiveIntegerField(default=0)
    # The provider's request_counts, as last polled.
    counts = models.JSONField(default=dict, blank=True)
    results_recorded = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    polled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField(null=True, blank=True)

    objects = MessageBatchQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=MessageBatchStatus.values),
                                   name="message_batch_status_valid"),
            models.UniqueConstraint(fields=["lease_token"], name="message_batch_one_per_claim"),
        ]
        indexes = [models.Index(fields=["status"], name="message_batch_status_idx")]

    def __str__(self) -> str:
        return self.provider_batch_id or f"batch {self.pk} (submitting)"


class Attempt(Usage):
    """One provider call for one block: every retry and every cent can be traced."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="attempts")
    block = models.ForeignKey(Block, on_delete=models.CASCADE, related_name="attempt_set")
    number = models.PositiveSmallIntegerField()
    pass_number = models.PositiveIntegerField(default=1)
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices)
    # False when the block's lease had been taken over: the call happened (and cost) but its
    # result was not written.
    accepted = models.BooleanField(default=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    request_id = models.CharField(max_length=100, blank=True, default="")
    # A block's output is stored once. The current result lives on the block (Block.output); an
    # accepted success's reply is moved here only when a later pass reopens the block
    # (BlockQuerySet.reopen: `keep_superseded_outputs`), so earlier passes' results stay readable
    # after a reseed. NULL on the attempt whose result is still the block's (read it from the block).
    output = models.TextField(null=True, blank=True)  # noqa: DJ001
    # Its document, for a structured run (the same rule).
    output_json = models.JSONField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    model = models.CharField(max_length=100, blank=True, default="")
    # The key the call was made with (a run may call with a pool of keys); SET_NULL as Run.key.
    key = models.ForeignKey(ProviderKey, null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="+")
    worker = models.CharField(max_length=200, blank=True, default="")
    # When the call went out (after its lane granted it); created_at is when it was recorded.
    started_at = models.DateTimeField(null=True, blank=True)
    # Answered through a Message Batch (billed at half the live price).
    batch = models.ForeignKey(MessageBatch, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="attempts")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["block", "created_at"]
        indexes = [
            models.Index(fields=["run", "-created_at"], name="attempt_run_created_idx"),
            # The console's spend and throughput over a time range (apps/console/selectors.py): an
            # index-only scan of the range's entries, never the table (its outputs are long).
            models.Index(fields=["created_at"], include=["model", "outcome", "http_status", "cost_usd"],
                         name="attempt_created_idx"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.block_id}: {self.outcome}"


class RunKeyState(models.TextChoices):
    ACTIVE = "active", "In the pool"
    LEFT = "left", "Left the pool"


class RunKey(models.Model):
    """One key of a run's pool (issue 22): the run's calls are spread over its active keys' lanes.
    A key the provider refuses (401/403), or whose address turned unsafe, leaves the pool of every
    run it is in (`left_cause`, `left_reason`); the run pauses only when no key is left, and the key
    comes back when it validates again. `Run.key` is the pool's first key (position 0)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="pool")
    # CASCADE: a deleted key simply leaves the pools it was in (the first key is Run.key, which
    # key_delete refuses while the run is active).
    key = models.ForeignKey(ProviderKey, on_delete=models.CASCADE, related_name="run_pools")
    position = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=8, choices=RunKeyState.choices, default=RunKeyState.ACTIVE)
    left_cause = models.CharField(max_length=16, choices=PausedCause.choices, blank=True, default="")
    left_reason = models.TextField(blank=True, default="")
    left_at = models.DateTimeField(null=True, blank=True)
    # A call on this key has answered with the run's cacheable prefix: its workspace's cache is warm.
    cache_warmed = models.BooleanField(default=False)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="run_key_once_per_run"),
            models.UniqueConstraint(fields=["run", "position"], name="run_key_position_unique"),
            models.CheckConstraint(condition=Q(state__in=RunKeyState.values), name="run_key_state_valid"),
        ]
        indexes = [models.Index(fields=["key", "state"], name="run_key_key_state_idx")]

    def __str__(self) -> str:
        return f"key {self.key_id} of {self.run_id} ({self.state})"


class PassScope(models.TextChoices):
    INITIAL = "initial", "Initial submission"
    ALL = "all", "Reseed: all blocks"
    FAILED = "failed", "Reseed: failed blocks"
    FILTER = "filter", "Reseed: blocks matching a filter"
    REPLAY = "replay", "Replay of dead-lettered blocks of an ended run"


class RunPass(models.Model):
    """One pass over a run's blocks: the first from submission, one more per reseed.

    Written by `run_reseed` (which also records pass 1 the first time a run is reseeded), so that a
    run's history stays readable: which blocks each pass took, with which model and prompt, and the
    run's counts when it began. Results of every pass are on the Attempt rows (`pass_number`,
    `output`)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="passes")
    number = models.PositiveIntegerField()
    scope = models.CharField(max_length=16, choices=PassScope.choices)
    # The reseed filter as given: {"status": [...], "error_code": ..., "prompt_version": ...}.
    filter = models.JSONField(default=dict, blank=True)
    model = models.CharField(max_length=100)
    system_prompt = models.TextField(blank=True, default="")
    prompt_template = models.TextField(default="{input}")
    prompt_version = models.CharField(max_length=64)
    pipeline_version = models.CharField(max_length=32)
    # How many blocks this pass took back to pending (pass 1: every block).
    selected_blocks = models.PositiveIntegerField(default=0)
    # The run's counts when this pass began, that is at the end of the previous pass.
    prior_completed_blocks = models.PositiveIntegerField(default=0)
    prior_failed_blocks = models.PositiveIntegerField(default=0)
    prior_canceled_blocks = models.PositiveIntegerField(default=0)
    prior_cost_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)
    created_at = models.DateTimeField(default=timezone.now)
    # How the pass ended, kept as it was: a later pass never rewrites an earlier one's history.
    finished_at = models.DateTimeField(null=True, blank=True)
    ended_status = models.CharField(max_length=16, blank=True, default="")
    completed_blocks = models.PositiveIntegerField(null=True, blank=True)
    failed_blocks = models.PositiveIntegerField(null=True, blank=True)
    canceled_blocks = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=8, null=True, blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="run_pass_number_unique"),
        ]

    def __str__(self) -> str:
        return f"pass {self.number} of {self.run_id}"
