"""Deleting a run, and (reusing it) everything a user owns.

A person asks (API DELETE, the admin's action, `manage.py runs delete`); `run_delete` refuses a run
that may still work (409: cancel it first), else marks it `deleting_at` (gone from every list at once)
and queues `conveyor.runs.delete_run` after commit. That task (`run_rows_delete`) deletes the run's
rows in plain SQL, one short transaction per range of `DELETE_BATCH_BLOCKS` block indexes (the
blocks' attempts, dead-letter rows and diagnostics, then the blocks), then what hangs off the run
itself (batches, passes, webhook deliveries, anything left by run id), then the run row. No ORM
collector (it would load every row and issue `IN` lists of a million ids in one transaction), no
long transaction (which holds back row cleanup for every other run's claims), no lock a serving loop
needs (the run has ended: nothing else writes its blocks). Safe to run twice, and to resume after a
crash: the beat sweep (`runs_retention_sweep`) queues it again for a run still `deleting` after
`DELETE_RESUME_MINUTES`.
"""

import logging
from datetime import timedelta
from typing import Any

from celery import current_app
from django.db import connection, transaction
from django.utils import timezone

from apps.core.ids import RunId
from apps.runs.models import Run
from apps.runs.services.lifecycle import RunStateError
from apps.runs.transitions import RUN_ENDED, lock_run

logger = logging.getLogger(__name__)

DELETE_RUN_TASK = "conveyor.runs.delete_run"
# Blocks per transaction: with their attempts (1-3 each) a few thousand rows, some tens of ms.
DELETE_BATCH_BLOCKS = 5000
DELETE_RESUME_MINUTES = 10


def run_delete_refusal(run: Run) -> str | None:
    if run.status not in RUN_ENDED:
        return f"a {run.status} run cannot be deleted: cancel it first"
    if Run.objects.filter(pk=run.pk, pipeline_step__isnull=False).exists():
        return "this run is a step of a pipeline: it goes with its pipeline"
    return None


def run_delete(*, run_id: RunId) -> Run:
    """Mark an ended run for deletion and queue the work; a run already being deleted is left as is.
    Raises RunStateError (409) for a run that may still work."""
    with transaction.atomic():
        run = lock_run(run_id)
        if run.deleting_at is None:
            refusal = run_delete_refusal(run)
            if refusal:
                raise RunStateError(refusal)
            run.deleting_at = timezone.now()
            Run.objects.filter(pk=run.pk).update(deleting_at=run.deleting_at)
        run_delete_queue_on_commit(run.pk)
    return run


def run_delete_queue_on_commit(run_id: RunId) -> None:
    transaction.on_commit(lambda: current_app.signature(DELETE_RUN_TASK, args=(str(run_id),)).apply_async())


def _execute(sql: str, params: list[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


BLOCKS_IN_RANGE = "SELECT id FROM runs_block WHERE run_id = %s AND block_index >= %s AND block_index < %s"
# Each batch: what points at the range's blocks first (the database checks the foreign keys at commit).
# `= ANY(ARRAY(...))` keeps the plan on the block_id indexes whatever the statistics say (an `IN
# (SELECT ...)` was planned as a hash join over a sequential scan of every attempt, once per batch).
BATCH_STATEMENTS = (
    f"DELETE FROM runs_attempt WHERE block_id = ANY(ARRAY({BLOCKS_IN_RANGE}))",
    f"DELETE FROM pipeline_failures WHERE block_id = ANY(ARRAY({BLOCKS_IN_RANGE}))",
    f"DELETE FROM diagnostic_logs WHERE block_id = ANY(ARRAY({BLOCKS_IN_RANGE}))",
    "DELETE FROM runs_block WHERE run_id = %s AND block_index >= %s AND block_index < %s",
)
# A batch lost in a crash is simply done again (the task is idempotent), so its commit need not wait
# for the WAL to reach the disk.
NO_WAIT = "SET LOCAL synchronous_commit TO OFF"
# Then what hangs off the run itself (and anything of it without a block).
RUN_STATEMENTS = (
    "DELETE FROM runs_attempt WHERE run_id = %s",
    "DELETE FROM pipeline_failures WHERE run_id = %s",
    "DELETE FROM diagnostic_logs WHERE run_id = %s",
    "DELETE FROM runs_block WHERE run_id = %s",
    "DELETE FROM runs_messagebatch WHERE run_id = %s",
    "DELETE FROM runs_runpass WHERE run_id = %s",
    "DELETE FROM runs_runkey WHERE run_id = %s",
    "DELETE FROM webhooks_webhookdelivery WHERE run_id = %s",
    "DELETE FROM runs_run WHERE id = %s AND deleting_at IS NOT NULL",
)


def block_index_ranges(run_id: RunId, batch: int) -> list[tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(block_index), max(block_index) FROM runs_block WHERE run_id = %s", [str(run_id)]
        )
        low, high = cursor.fetchone()
    if low is None:
        return []
    return [(start, start + batch) for start in range(low, high + 1, batch)]


def run_rows_delete(*, run_id: RunId, batch: int = DELETE_BATCH_BLOCKS) -> dict[str, int]:
    """Delete a run marked `deleting` and everything of it, in short transactions. Returns counts."""
    run_id = str(run_id)
    if not Run.objects.filter(pk=run_id, deleting_at__isnull=False).exists():
        return {"blocks": 0, "batches": 0, "run": 0}
    blocks = batches = 0
    for start, end in block_index_ranges(run_id, batch):
        with transaction.atomic():
            _execute(NO_WAIT, [])
            for statement in BATCH_STATEMENTS:
                deleted = _execute(statement, [run_id, start, end])
            blocks += deleted
            batches += 1
    with transaction.atomic():
        for statement in RUN_STATEMENTS:
            deleted = _execute(statement, [run_id])
    logger.info("run %s deleted: %s blocks in %s batches", run_id, blocks, batches)
    return {"blocks": blocks, "batches": batches, "run": deleted}


def runs_delete_stalled(*, now: Any = None) -> int:
    """The sweep's safety net: runs still marked deleting a while after they were asked for (a worker
    lost mid-way) are queued again."""
    now = now or timezone.now()
    stalled = list(
        Run.objects.filter(
            deleting_at__lt=now - timedelta(minutes=DELETE_RESUME_MINUTES)
        ).values_list("pk", flat=True)[:100]
    )
    for run_id in stalled:
        current_app.signature(DELETE_RUN_TASK, args=(str(run_id),)).apply_async()
    return len(stalled)


def runs_delete_for_owner(*, owner_id: int) -> list[str]:
    """Every run of a user, marked deleting (callers refuse first if any is still active), for
    `user_delete`. Returns their ids; the caller deletes them (run_rows_delete)."""
    runs = Run.objects.filter(owner_id=owner_id)
    runs.filter(deleting_at__isnull=True).update(deleting_at=timezone.now())
    return [str(pk) for pk in runs.values_list("pk", flat=True)]


def runs_delete_for_team(*, team_id: int) -> tuple[list[str], list[str]]:
    """Every run of a team, marked deleting (the caller refuses first if any is still active), for a
    team's deletion. Returns (the ids of runs on their own, those of pipeline steps): the first can
    go through `conveyor.runs.delete_run` at once; a step's run only after its pipeline's rows."""
    runs = Run.objects.filter(team_id=team_id)
    runs.filter(deleting_at__isnull=True).update(deleting_at=timezone.now())
    alone = runs.filter(pipeline_step__isnull=True).values_list("pk", flat=True)
    steps = runs.filter(pipeline_step__isnull=False).values_list("pk", flat=True)
    return [str(pk) for pk in alone], [str(pk) for pk in steps]
