"""Dead-letter replay: a block that failed for good goes back to work with a fresh attempt budget.

Finished means finished. The beat task (`conveyor.failures.replay_due`) replays unresolved
`pipeline_failures` rows whose `next_retry_at` has come only while their run is still active
(queued, running or paused): the block rejoins the run's current pass and numbers its attempts on.
When a run's pass ends, its rows still waiting are parked (apps.runs.services.finalize): beat never
reopens an ended run, whose results may already have been exported and whose money was spent as
shown. A person may still replay an ended run's failures (`failure_replay_now`,
`failures_replay_selected`: the API's and the admin's "replay"): that is a new pass of the run, with
its own RunPass row, attempt numbering, timings and end, like a reseed of exactly those blocks.

A replayed row's `replay_count` goes up and its `next_retry_at` moves on with backoff; the block's next
outcome then resolves the row (success, see outcomes.py) or updates it (failure, failure_record),
which parks it once FAILURE_MAX_REPLAYS replays are spent.

Locking: each row is replayed in its own transaction that locks the run row first, then the failure
row (FOR UPDATE SKIP LOCKED, due condition re-checked), then writes the block, the same run -> block
order as the engine. Two sweeps racing for one row are serialised on the run row and the second finds
it no longer due; a row held by anyone else is left for the next sweep.
"""

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.core.ids import RunId
from apps.core.logcontext import log_context
from apps.failures.models import EventCode, LogLevel, PipelineFailure
from apps.failures.services import FailureStateError, diagnostic_log, replay_due_at
from apps.runs.dispatch import run_dispatch_on_commit
from apps.runs.models import Block, BlockStatus, PassScope, Run, RunStatus
from apps.runs.services.finalize import PARKED_AT_END
from apps.runs.services.reseed import start_pass
from apps.runs.transitions import RUN_ACTIVE, RUN_ENDING, lock_run

FUNCTION_NAME = "conveyor.failures.replay_due"
# Rows per sweep; the rest wait for the next tick (each row is a short transaction of its own).
REPLAY_BATCH = 500


class ReplayResult(enum.StrEnum):
    REPLAYED = "replayed"
    # Nothing left to replay: the block succeeded meanwhile, or it no longer exists.
    RESOLVED = "resolved"
    # Not replayable now (run canceled, block already back at work): taken off the schedule.
    PARKED = "parked"
    # Not due any more, resolved, or held by another transaction: left alone.
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ReplayVerdict:
    result: ReplayResult
    reason: str = ""


def _uid(row: PipelineFailure) -> str | None:
    """The block's uid as the failure recorded it (its context), for the log line."""
    return (row.context or {}).get("uid") if isinstance(row.context, dict) else None


def _lock_run_or_none(run_id: RunId) -> Run | None:
    if run_id is None:
        return None
    try:
        return lock_run(run_id)
    except Run.DoesNotExist:
        return None


def _close(row: PipelineFailure, *, now: datetime, note: str) -> ReplayVerdict:
    PipelineFailure.objects.filter(pk=row.pk).update(resolved_at=now, next_retry_at=None,
                                                     resolution_note=note)
    return ReplayVerdict(ReplayResult.RESOLVED, note)


def _park(row: PipelineFailure, *, reason: str, write: bool) -> ReplayVerdict:
    """Take the row off the schedule (the sweep), or just say why not (a replay by hand changes
    nothing when it is refused)."""
    if write:
        PipelineFailure.objects.filter(pk=row.pk).update(next_retry_at=None)
    return ReplayVerdict(ReplayResult.PARKED, reason)


@transaction.atomic
def _replay_one(*, failure_id: int, run_id: RunId, now: datetime, due_only: bool) -> ReplayVerdict:
    run = _lock_run_or_none(run_id)
    rows = PipelineFailure.objects.filter(pk=failure_id)
    if due_only:
        rows = rows.select_for_update(skip_locked=True).filter(
            resolved_at__isnull=True, next_retry_at__lte=now
        )
    else:
        rows = rows.select_for_update()
    row = rows.first()
    if row is None:
        return ReplayVerdict(ReplayResult.SKIPPED, "no longer due, or held by another transaction")
    if row.resolved_at is not None:
        return ReplayVerdict(ReplayResult.SKIPPED, f"failure {row.pk} is already resolved")
    block_status = (
        Block.objects.filter(pk=row.block_id).values_list("status", flat=True).first()
        if run is not None and row.block_id is not None else None
    )
    if run is None or block_status is None:
        return _close(row, now=now, note="the block no longer exists")
    if block_status == BlockStatus.SUCCEEDED:
        return _close(row, now=now, note="the block had already succeeded")
    if run.status in RUN_ENDING or block_status == BlockStatus.CANCELED:
        return _park(row, reason="the run was canceled; reseed it to run the block again",
                     write=due_only)
    if run.key_id is None:
        return _park(row, reason="the run's provider key was deleted; it cannot run again",
                     write=due_only)
    if block_status != BlockStatus.FAILED:
        return _park(row, reason=f"the block is already {block_status}; its outcome will resolve or "
                                 "reschedule this failure", write=due_only)

    if run.status == RunStatus.COMPLETE:
        if due_only:
            return _park(row, reason=PARKED_AT_END, write=True)
        _start_replay_pass(run, [row])
        return ReplayVerdict(ReplayResult.REPLAYED)
    # The conditional UPDATE is the guard: only a block that is still failed goes back to work.
    # (block_status was found above, so row.block_id is set.)
    if not Block.objects.filter(pk=row.block_id, status=BlockStatus.FAILED).reopen(  # type: ignore[misc]
            new_pass=False):
        return ReplayVerdict(ReplayResult.SKIPPED, "the block changed meanwhile")
    Run.objects.filter(pk=run.pk).update(failed_blocks=F("failed_blocks") - 1)
    status = run.status

    row.replay_count += 1
    # Not picked again before then; the block's next failure reschedules it from its own time.
    row.next_retry_at = replay_due_at(error_code=row.error_code, replay_count=row.replay_count, now=now)
    row.save(update_fields=["replay_count", "next_retry_at"])
    with log_context(block_uid=_uid(row)):
        diagnostic_log(
            function_name=FUNCTION_NAME, event_code=EventCode.PIPELINE_RETRY, level=LogLevel.INFO,
            message=f"replay {row.replay_count} of failure {row.pk} ({row.error_code})",
            metadata={"failure_id": row.pk, "replay_count": row.replay_count, "manual": not due_only},
            run_id=run.pk, block_id=row.block_id,
        )
    # A paused run keeps the block pending until it is resumed.
    if status in RUN_ACTIVE:
        run_dispatch_on_commit(run_id=run.pk)
    return ReplayVerdict(ReplayResult.REPLAYED)


def _start_replay_pass(run: Run, rows: list[PipelineFailure]) -> int:
    """A new pass of an ended run over the failed blocks of these rows (the caller holds the run's
    lock and the rows')."""
    blocks = Block.objects.filter(run_id=run.pk, pk__in=[r.block_id for r in rows], status=BlockStatus.FAILED)
    number = start_pass(run, blocks, scope=PassScope.REPLAY, filters={"failures": [r.pk for r in rows]},
                        model=run.model, system_prompt=run.system_prompt,
                        prompt_template=run.prompt_template,
                        empty="none of these failures' blocks is still failed", empty_field="ids")
    for row in rows:
        PipelineFailure.objects.filter(pk=row.pk).update(replay_count=F("replay_count") + 1,
                                                         next_retry_at=None, resolution_note="")
        with log_context(block_uid=_uid(row)):
            diagnostic_log(
                function_name=FUNCTION_NAME, event_code=EventCode.PIPELINE_RETRY, level=LogLevel.INFO,
                message=f"replay of failure {row.pk} ({row.error_code}) as pass {number} of the ended run",
                metadata={"failure_id": row.pk, "pass": number, "manual": True},
                run_id=run.pk, block_id=row.block_id,
            )
    return number


@transaction.atomic
def _replay_ended_run(run_id: RunId, failure_ids: list[int], report: "BulkReplayReport") -> None:
    """Several failures of one ended run replayed together: one new pass, not one per failure."""
    run = lock_run(run_id)
    rows = list(PipelineFailure.objects.select_for_update().filter(pk__in=failure_ids))
    replayable = []
    for row in rows:
        # (A block_id of None, its block deleted, finds no row: the block is "gone".)
        status = Block.objects.filter(pk=row.block_id).values_list(  # type: ignore[misc]
            "status", flat=True).first()
        if row.resolved_at is not None:
            report.refused[row.pk] = f"failure {row.pk} is already resolved"
        elif status == BlockStatus.SUCCEEDED:
            _close(row, now=timezone.now(), note="the block had already succeeded")
            report.resolved.append(row.pk)
        elif status != BlockStatus.FAILED:
            report.refused[row.pk] = f"the block is {status or 'gone'}"
        else:
            replayable.append(row)
    if replayable:
        _start_replay_pass(run, replayable)
        report.replayed.extend(row.pk for row in replayable)


def failures_replay_sweep(now: datetime | None = None) -> int:
    """One sweep of the beat task: replay every unresolved row whose next_retry_at has come (up to
    REPLAY_BATCH). Returns how many blocks went back to work. Safe to run concurrently."""
    now = now or timezone.now()
    due = list(
        PipelineFailure.objects.filter(resolved_at__isnull=True, next_retry_at__lte=now)
        .order_by("next_retry_at", "pk")
        .values_list("pk", "block__run_id")[:REPLAY_BATCH]
    )
    verdicts = []
    for pk, run_id in due:
        with log_context(run_id=run_id):
            verdicts.append(_replay_one(failure_id=pk, run_id=run_id, now=now, due_only=True))
    return sum(v.result == ReplayResult.REPLAYED for v in verdicts)


def failure_replay_now(*, failure_id: int) -> PipelineFailure:
    """Replay one unresolved row now, due or not, parked or not (the API's and the admin's "replay").

    Returns the row: replayed, or resolved if its block had already succeeded. Raises
    FailureStateError when there is nothing to replay, PipelineFailure.DoesNotExist if it is gone."""
    run_id = PipelineFailure.objects.filter(pk=failure_id).values_list("block__run_id", flat=True).get()
    with log_context(run_id=run_id):
        verdict = _replay_one(failure_id=failure_id, run_id=run_id, now=timezone.now(), due_only=False)
    if verdict.result in (ReplayResult.PARKED, ReplayResult.SKIPPED):
        raise FailureStateError(verdict.reason)
    return PipelineFailure.objects.get(pk=failure_id)


@dataclass
class BulkReplayReport:
    replayed: list[int] = field(default_factory=list)
    # Closed instead of replayed: their block had already succeeded, or is gone.
    resolved: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)


def failures_replay_selected(*, failure_ids: Iterable[int]) -> BulkReplayReport:
    """failure_replay_now for each id (the bulk replay of the API and the admin): one transaction per
    row, so one refusal never undoes the others; the failures of one ended run together start one new
    pass."""
    report = BulkReplayReport()
    ids = list(dict.fromkeys(failure_ids))
    ended: dict[Any, list[int]] = {}
    for failure_id, run_id, status in PipelineFailure.objects.filter(pk__in=ids).values_list(
        "pk", "block__run_id", "block__run__status"
    ):
        if status == RunStatus.COMPLETE:
            ended.setdefault(run_id, []).append(failure_id)
    for run_id, group in ended.items():
        _replay_ended_run(run_id, group, report)
    grouped = {pk for group in ended.values() for pk in group}
    for failure_id in (pk for pk in ids if pk not in grouped):
        try:
            row = failure_replay_now(failure_id=failure_id)
        except PipelineFailure.DoesNotExist:
            report.refused[failure_id] = "not found"
        except FailureStateError as exc:
            report.refused[failure_id] = str(exc)
        else:
            (report.resolved if row.resolved_at else report.replayed).append(failure_id)
    return report
