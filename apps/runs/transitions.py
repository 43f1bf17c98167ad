"""The state machine of runs and blocks, in one place: the statuses, the named sets of statuses, and
every transition as a queryset method that moves rows with one conditional UPDATE.

Blocks::

                claim (attempts+1, one new lease token per claim)
    pending ───────────────────────────────────────────────► claimed
     ▲ ▲ ▲                                                     │
     │ │ └── release: no call was made, attempt given back ────┤
     │ └──── write_outcomes: retryable, throttled, key refused ┤
     └────── expire_leases: worker vanished, attempt counts ───┤
                                                               ├─ write_outcomes: success ──► succeeded
                                                               ├─ write_outcomes, expire_leases:
                                                               │  out of attempts, fatal ──► failed
                                                               └─ cancel_held, expire_leases, write_outcomes
                                                                  in a canceling run ──► canceled
    pending ── cancel_pending ──► canceled
    failed, succeeded, canceled ── reopen (dead-letter replay, reseed: a new pass) ──► pending

Runs::

    queued ──start──► running ──(no open block left)──► complete ──reopen──► running
       │                 │  ▲                                        (replay, reseed: a new pass)
       └───────┬─────────┘  └── resume ── paused ◄── pause(cause) ── queued/running
               └── cancel ──► canceling ──(nothing in flight)──► canceled

Each method returns how many rows it moved (lease expiry: the claims it took back); 0 means the rows
were not in a state that may make that move (someone else got there first), which callers treat as
"nothing to do". The fenced result write (claimed -> anything, only under the lease token a call was
given) is `BlockQuerySet.lock_held` + `write_outcomes`, used by apps.runs.services.outcomes; what
each outcome does to its block is decided in apps.runs.services.decisions.

Every transition of a run or of its blocks takes the run row's lock first (`lock_run`), then the
blocks': one lock order everywhere keeps cancellation, results, releases, replays and lease expiry
free of deadlocks, and serialises the run's counts.
"""

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from django.conf import settings
from django.db import models
from django.db.models import Exists, F, OuterRef, Q, Subquery

from apps.core.db import write_connection
from apps.core.ids import RunId

if TYPE_CHECKING:
    from apps.runs.models import Block, Run
    from apps.runs.services.decisions import Entry


def output_sha256(output: str | None) -> str:
    """The hash kept beside a block's output (and after a purge, instead of it): sha256 of its UTF-8
    text, hex; PostgreSQL computes the same with encode(sha256(convert_to(output, 'UTF8')), 'hex')."""
    return hashlib.sha256(output.encode()).hexdigest() if output is not None else ""


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    CANCELING = "canceling", "Canceling"
    CANCELED = "canceled", "Canceled"
    COMPLETE = "complete", "Complete"


class BlockStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CLAIMED = "claimed", "Claimed"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class PausedCause(models.TextChoices):
    """Why a run is paused; decides who may resume it. A key that validates again resumes the runs it
    paused (key_rejected, key_unsafe), a raised budget resumes a budget pause; the others wait for a
    person (resume by hand)."""

    KEY_REJECTED = "key_rejected", "The provider rejected the key (401/403)"
    KEY_BLOCKED = "key_blocked", "The key cannot spend (billing, spend limit)"
    KEY_DELETED = "key_deleted", "The run's key was deleted"
    KEY_UNSAFE = "key_unsafe", "The key's base_url broke an address rule at call time"
    BUDGET = "budget", "The run's budget is spent"
    BATCH_REFUSED = "batch_refused", "The provider refused the run's Message Batch as a whole"
    TEAM_BUDGET = "team_budget", "Its team's (or member's) spend limit for the period is reached"
    REQUESTED = "requested", "Paused by a person (resume by hand)"


# --- named sets: the only place these tuples are spelled out ---------------------------------------

# Runs that may claim and call: the engine serves them.
RUN_ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
RUN_PAUSABLE = RUN_ACTIVE
RUN_CANCELABLE = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED)
RUN_RESEEDABLE = (RunStatus.COMPLETE, RunStatus.CANCELED, RunStatus.PAUSED)
RUN_ENDING = (RunStatus.CANCELING, RunStatus.CANCELED)
RUN_ENDED = (RunStatus.COMPLETE, RunStatus.CANCELED)
# Not moving until someone acts (or its cause clears): what a progress display waits for.
RUN_SETTLED = (RunStatus.COMPLETE, RunStatus.CANCELED, RunStatus.PAUSED)
# Runs that may still call the provider with their key: a key they use cannot be deleted.
RUN_USING_KEY = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.CANCELING)

BLOCK_OPEN = (BlockStatus.PENDING, BlockStatus.CLAIMED)
BLOCK_TERMINAL = (BlockStatus.SUCCEEDED, BlockStatus.FAILED, BlockStatus.CANCELED)
# Which run counter each terminal block status sits in.
BLOCK_COUNTER: dict[str, str] = {
    BlockStatus.SUCCEEDED: "completed_blocks",
    BlockStatus.FAILED: "failed_blocks",
    BlockStatus.CANCELED: "canceled_blocks",
}


def lock_run(run_id: RunId) -> "Run":
    """The run row, locked (`FOR NO KEY UPDATE`) until the transaction ends, with its key: how every
    transition of a run or its blocks begins. A queued run's first claim, a result, a cancel, a
    release, a replay, a reseed and lease expiry all start here, so they happen one at a time."""
    from apps.runs.models import Run

    return (
        Run.objects.select_for_update(no_key=True, of=("self",))
        .select_related("key")
        .get(pk=run_id)
    )


class RunQuerySet(models.QuerySet["Run"]):
    def active(self) -> "RunQuerySet":
        return self.filter(status__in=RUN_ACTIVE)

    def start(self, *, now: datetime) -> int:
        return self.filter(status=RunStatus.QUEUED).update(status=RunStatus.RUNNING, started_at=now)

    def pause(self, *, cause: str, reason: str) -> int:
        return self.filter(status__in=RUN_PAUSABLE).update(
            status=RunStatus.PAUSED, paused_cause=cause, paused_reason=reason[:1000]
        )

    def paused_by(self, *causes: str) -> "RunQuerySet":
        return self.filter(status=RunStatus.PAUSED, paused_cause__in=causes)

    def resume(self) -> int:
        return self.filter(status=RunStatus.PAUSED).update(
            status=RunStatus.RUNNING, paused_cause="", paused_reason=""
        )

    def begin_canceling(self) -> int:
        return self.filter(status__in=RUN_CANCELABLE).update(
            status=RunStatus.CANCELING, paused_cause="", paused_reason=""
        )

    def reopen(self, **changes: Any) -> int:
        """An ended or paused run works again (a replayed block, a reseed): running, not finished."""
        return self.filter(status__in=(*RUN_RESEEDABLE, *RUN_ACTIVE)).update(
            status=RunStatus.RUNNING, paused_cause="", paused_reason="", finished_at=None, **changes
        )

    def complete_if_done(self, *, now: datetime) -> int:
        """running -> complete once no block is open (pending or claimed), unless it is held open:
        a pipeline step that an earlier step may still hand blocks to (apps.pipelines)."""
        from apps.runs.models import Block

        open_blocks = Block.objects.filter(run=OuterRef("pk"), status__in=BLOCK_OPEN)
        return self.filter(status=RunStatus.RUNNING, held_open=False).filter(~Exists(open_blocks)).update(
            status=RunStatus.COMPLETE, finished_at=now
        )

    def release_hold(self) -> int:
        """No more blocks will be handed to these runs: they may complete (run_finalize decides)."""
        return self.filter(held_open=True).update(held_open=False)

    def cancel_if_drained(self, *, now: datetime) -> int:
        """canceling -> canceled once no call is in flight."""
        from apps.runs.models import Block

        in_flight = Block.objects.filter(run=OuterRef("pk"), status=BlockStatus.CLAIMED)
        return self.filter(status=RunStatus.CANCELING).filter(~Exists(in_flight)).update(
            status=RunStatus.CANCELED, finished_at=now
        )


# The fenced result write: what lock_held reads of a held block, and what write_outcomes writes back.
BLOCK_READ_FIELDS = (
    "id", "run_id", "uid", "block_index", "lease_token", "attempts", "throttle_waits",
    "model_index", "overloaded_since",
    "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
    "cost_usd", "reserved_usd",
)
BLOCK_WRITE_FIELDS = (
    "status", "lease_token", "lease_expires_at", "next_attempt_at", "error_code", "error_message",
    "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
    "cost_usd", "attempts", "throttle_waits", "finished_at", "reserved_usd", "model_index",
    "overloaded_since",
)
# Only a success replaces the result and its version stamp; a failure keeps the last good output.
SUCCESS_WRITE_FIELDS = (
    *BLOCK_WRITE_FIELDS, "output", "output_json", "output_sha256", "latency_ms", "model", "pass_number",
    "pipeline_version", "prompt_version",
)

LEASE_EXPIRED = "lease_expired"
EXPIRED_AND_RETRIED = "lease expired; retried"


@dataclass(frozen=True)
class ExpiredClaim:
    """A block taken back from a worker whose lease expired: where it went, and what it was."""

    block_id: int
    uid: str
    block_index: int
    # Its new status: pending, failed or canceled.
    status: str
    attempts: int
    pass_attempts: int
    # Who held it (claimed_by), "" if nobody said.
    worker: str
    reserved_usd: Decimal

    @property
    def lost_on(self) -> str:
        return f"lease expired on {self.worker or 'an unknown worker'}"


def _expired_status(*, ending: bool, attempts: int, max_attempts: int) -> str:
    """Where a block whose lease expired goes: the attempt counts, so a block that kills its workers
    fails rather than loops; in a run being canceled it is canceled."""
    if ending:
        return BlockStatus.CANCELED
    if attempts >= max_attempts:
        return BlockStatus.FAILED
    return BlockStatus.PENDING


class BlockQuerySet(models.QuerySet["Block"]):
    def due(self, now: datetime) -> "BlockQuerySet":
        """Pending blocks whose wait (retry backoff, throttling) is over: what a claim may take."""
        return self.filter(status=BlockStatus.PENDING).filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        )

    def claim(self, *, token: UUID, lease_expires_at: datetime, worker: str, **changes: Any) -> int:
        """pending -> claimed under one fresh lease token; the attempt is counted now, so a block
        whose calls kill their workers still runs out of attempts."""
        return self.filter(status=BlockStatus.PENDING).update(
            status=BlockStatus.CLAIMED, lease_token=token, lease_expires_at=lease_expires_at,
            claimed_by=worker[:200], attempts=F("attempts") + 1, pass_attempts=F("pass_attempts") + 1,
            **changes,
        )

    def release(self, *, token: UUID) -> int:
        """claimed -> pending before any call was made for them (the lane closed, the process is
        stopping): the attempt is given back and the blocks are due again at once."""
        return self.filter(status=BlockStatus.CLAIMED, lease_token=token).update(
            status=BlockStatus.PENDING, lease_token=None, lease_expires_at=None,
            attempts=F("attempts") - 1, pass_attempts=F("pass_attempts") - 1, reserved_usd=0,
        )

    def cancel_held(self, *, token: UUID, now: datetime) -> int:
        """claimed -> canceled before any call was made for them, in a run being canceled (the
        release of a canceling run): their reservation ends with them."""
        return self.filter(status=BlockStatus.CLAIMED, lease_token=token).update(
            status=BlockStatus.CANCELED, lease_token=None, lease_expires_at=None, reserved_usd=0,
            finished_at=now,
        )

    def expire_leases(self, *, run: "Run", now: datetime) -> list[ExpiredClaim]:
        """claimed past its lease -> pending with the attempt counted; failed (`lease_expired`) once
        out of attempts; canceled in a run being canceled. The caller holds the run row (lock_run);
        blocks locked by someone else right now (their result being written) are left for the next
        look. One UPDATE per destination (per worker for the failed, whose message names it).
        Returns the claims taken back."""
        ending = run.status in RUN_ENDING
        rows = (
            self.filter(run_id=run.pk, status=BlockStatus.CLAIMED, lease_expires_at__lt=now)
            .order_by("block_index")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("id", "uid", "block_index", "attempts", "pass_attempts", "claimed_by",
                         "reserved_usd")
        )
        expired = [
            ExpiredClaim(block_id=i, uid=uid, block_index=index, attempts=attempts,
                         pass_attempts=numbered, worker=worker, reserved_usd=reserved,
                         status=_expired_status(ending=ending, attempts=attempts,
                                                max_attempts=run.max_attempts))
            for i, uid, index, attempts, numbered, worker, reserved in rows
        ]
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for claim in expired:
            message = claim.lost_on if claim.status == BlockStatus.FAILED else EXPIRED_AND_RETRIED
            groups[(claim.status, message)].append(claim.block_id)
        for (status, message), ids in groups.items():
            # Locked above, so still claimed: the filter says what this move is from.
            self.filter(pk__in=ids, status=BlockStatus.CLAIMED).update(
                status=status, lease_token=None, lease_expires_at=None, next_attempt_at=now,
                error_code=LEASE_EXPIRED, error_message=message, reserved_usd=0,
                finished_at=None if status == BlockStatus.PENDING else now,
            )
        return expired

    def cancel_pending(self, *, now: datetime) -> int:
        return self.filter(status=BlockStatus.PENDING).update(
            status=BlockStatus.CANCELED, finished_at=now, next_attempt_at=None
        )

    def reopen(self, *, new_pass: bool) -> int:
        """Any block not in flight goes back to pending with a fresh attempt budget (a reseed or a
        replay as a new pass; a replay within the current pass keeps numbering its attempts on).
        Its last output stays until the new pass overwrites it. A new pass starts again on the run's
        primary model (a fallback was for the pass that needed it)."""
        changes: dict[str, Any] = {"pass_attempts": 0, "model_index": 0} if new_pass else {}
        self.keep_superseded_outputs()
        return self.exclude(status=BlockStatus.CLAIMED).update(
            status=BlockStatus.PENDING, attempts=0, throttle_waits=0, next_attempt_at=None,
            lease_token=None, lease_expires_at=None, claimed_by="", error_code="", error_message="",
            finished_at=None, overloaded_since=None, **changes,
        )

    def keep_superseded_outputs(self) -> int:
        """A block's output is stored once, on the block. Before blocks go back to work (and a new
        success overwrites their output), each one's current result moves onto the attempt that
        produced it (the accepted success of the block's result pass), so earlier passes' results stay
        readable. One UPDATE ... FROM over the selected blocks; a block with no output moves nothing."""
        from apps.runs.models import Attempt  # models imports this module

        blocks = self.exclude(status=BlockStatus.CLAIMED).filter(output__isnull=False)
        return (Attempt.objects.filter(block__in=blocks, outcome="succeeded", accepted=True,
                                       output__isnull=True, pass_number=F("block__pass_number"))
                .update(output=Subquery(self.model.objects.filter(pk=OuterRef("block_id")).values("output")[:1]),
                        output_json=Subquery(self.model.objects.filter(pk=OuterRef("block_id"))
                                             .values("output_json")[:1])))

    def lock_held(self, tokens: dict[int, Any]) -> dict[int, "Block"]:
        """The fence: lock the blocks still claimed under the lease each call was given and return
        them by id. A block claimed again since (its lease expired) has another token and is left
        out: whoever holds it now writes it. Rows locked here cannot change until commit."""
        rows = (
            self.filter(id__in=tokens, status=BlockStatus.CLAIMED)
            .select_for_update(of=("self",))
            .only(*BLOCK_READ_FIELDS)
        )
        return {block.id: block for block in rows if block.lease_token == tokens[block.id]}

    def write_outcomes(self, entries: Iterable["Entry"], *, run: "Run", now: datetime) -> None:
        """claimed -> each decision's status: the held blocks (lock_held) of these entries take their
        new state, usage and cost, and are written back in two statements (successes also write
        their output and version stamp)."""
        succeeded: list[Block] = []
        other: list[Block] = []
        for entry in entries:
            block = entry.block
            if block is None:
                continue
            _apply_decision(block, entry, run, now)
            (succeeded if block.status == BlockStatus.SUCCEEDED else other).append(block)
        self.write_rows(succeeded, SUCCESS_WRITE_FIELDS)
        self.write_rows(other, BLOCK_WRITE_FIELDS)

    def write_rows(self, blocks: Iterable[Any], fields: Sequence[str]) -> None:
        """Write locked rows back with one parametrised UPDATE run for every row (executemany, which
        psycopg sends as one pipeline).

        This is the hot path of the whole system. Django's bulk_update builds a CASE expression per
        field per row and cost ~5 ms of CPU per block here (measured), which on a worker starves the
        event loop making the provider calls; this costs a small fraction of a millisecond. Values go
        through each field's own get_db_prep_save, so types are adapted exactly as the ORM would."""
        blocks = list(blocks)
        if not blocks:
            return
        model = self.model
        db = write_connection(model)
        qn = db.ops.quote_name
        # (Every name is a concrete column of the model, never a relation's reverse side.)
        columns = [cast("models.Field[Any, Any]", model._meta.get_field(name)) for name in fields]
        sql = (
            f"UPDATE {qn(model._meta.db_table)} SET "
            + ", ".join(f"{qn(field.column)} = %s" for field in columns)
            + f" WHERE {qn(model._meta.pk.column)} = %s"
        )
        params = [
            [field.get_db_prep_save(getattr(block, field.attname), db) for field in columns]
            + [block.pk]
            for block in blocks
        ]
        with db.cursor() as cursor:
            cursor.executemany(sql, params)


def _apply_decision(block: "Block", entry: "Entry", run: "Run", now: datetime) -> None:
    """Set a held block's new state on its instance (written back by write_outcomes)."""
    outcome, decision = entry.outcome, entry.decision
    block.status = decision.status
    block.lease_token = None
    block.lease_expires_at = None
    block.next_attempt_at = decision.next_attempt_at
    block.error_code = decision.error_code
    block.error_message = decision.error_message
    block.input_tokens += outcome.usage.input_tokens
    block.output_tokens += outcome.usage.output_tokens
    block.cache_creation_input_tokens += outcome.usage.cache_creation_input_tokens
    block.cache_read_input_tokens += outcome.usage.cache_read_input_tokens
    block.cost_usd += outcome.cost_usd
    # The claim's worst-case reservation ends with the call; count_on_run gives it back to the run.
    block.reserved_usd = 0
    if decision.refund_attempt:
        block.attempts -= 1
    if decision.throttle_wait:
        block.throttle_waits += 1
    # Overloaded since its first 529 on this model without an answer between (decisions.fallback).
    block.overloaded_since = (block.overloaded_since or now) if decision.overloaded else None
    if decision.model_index is not None:
        # On to the next model, afresh: the last model's failures were not this block's.
        block.model_index = decision.model_index
        block.attempts = 0
        block.throttle_waits = 0
    if decision.status == BlockStatus.SUCCEEDED:
        block.output = outcome.output
        block.output_json = outcome.output_json
        block.output_sha256 = output_sha256(outcome.output)
        block.latency_ms = outcome.latency_ms
        block.model = outcome.model or run.model
        block.pass_number = run.current_pass
        # The build that wrote this result (a run can outlive a deploy; a reseed can select by it).
        block.pipeline_version = settings.CONVEYOR["PIPELINE_VERSION"]
        block.prompt_version = run.prompt_version
    block.finished_at = now if decision.status in BLOCK_COUNTER else None
