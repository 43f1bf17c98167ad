"""Retention: when a run's retention period has passed since it ended, the beat sweep empties its
text and keeps its accounting.

A run's period is `Run.retention_days`, else the `RUN_RETENTION_DAYS` default (unset: kept for ever).
`run_purge` empties, in plain SQL UPDATEs of one range of `PURGE_BATCH_BLOCKS` block indexes per short
transaction: the blocks' inputs, outputs (text and document), metadata; the attempts' superseded
replies; the dead-letter rows' payload snapshots and context; the diagnostic entries' metadata. It
keeps counts, tokens, cost, timings, statuses, error codes, uids and `Block.output_sha256` (compare
says "same answer" from the hashes once the text is gone), then sets `Run.purged_at`.

No race with a new pass: the sweep takes only ended runs, and `start_pass` refuses a run whose
retention has passed (under the run's lock), so nothing reopens a run while it is purged.
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.core.ids import RunId
from apps.runs.models import Run
from apps.runs.services.deletion import BLOCKS_IN_RANGE, NO_WAIT, block_index_ranges, runs_delete_stalled
from apps.runs.transitions import RUN_ENDED

logger = logging.getLogger(__name__)

PURGE_BATCH_BLOCKS = 5000
# Runs purged per sweep; the next sweep takes the rest.
PURGE_RUNS_PER_SWEEP = 20

PURGE_STATEMENTS = (
    f"""UPDATE runs_attempt SET output = NULL, output_json = NULL
         WHERE block_id = ANY(ARRAY({BLOCKS_IN_RANGE}))
           AND (output IS NOT NULL OR output_json IS NOT NULL)""",
    f"""UPDATE pipeline_failures SET payload_snapshot = '{{}}'::jsonb, context = '{{}}'::jsonb
         WHERE block_id = ANY(ARRAY({BLOCKS_IN_RANGE}))""",
    f"""UPDATE diagnostic_logs SET metadata = '{{}}'::jsonb WHERE block_id = ANY(ARRAY({BLOCKS_IN_RANGE}))""",
    """UPDATE runs_block SET input = '', output = NULL, output_json = NULL, metadata = NULL
        WHERE run_id = %s AND block_index >= %s AND block_index < %s""",
)
RUN_PURGE_STATEMENTS = (
    "UPDATE pipeline_failures SET payload_snapshot = '{}'::jsonb, context = '{}'::jsonb WHERE run_id = %s",
    "UPDATE diagnostic_logs SET metadata = '{}'::jsonb WHERE run_id = %s",
)


def retention_days_of(run: Run) -> int | None:
    if run.retention_days is not None:
        return run.retention_days
    default = settings.CONVEYOR.get("RUN_RETENTION_DAYS")
    return int(default) if default is not None else None


def retention_expired(run: Run, now: datetime | None = None) -> bool:
    """Whether the run's retention has passed: its text is (or is about to be) purged."""
    if run.purged_at is not None:
        return True
    days = retention_days_of(run)
    if days is None or run.finished_at is None or run.status not in RUN_ENDED:
        return False
    return run.finished_at + timedelta(days=days) <= (now or timezone.now())


def runs_due_for_purge(*, now: datetime | None = None, limit: int = PURGE_RUNS_PER_SWEEP) -> list[str]:
    now = now or timezone.now()
    default = settings.CONVEYOR.get("RUN_RETENTION_DAYS")
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT id FROM runs_run
                WHERE purged_at IS NULL AND deleting_at IS NULL AND finished_at IS NOT NULL
                  AND status = ANY(%s) AND COALESCE(retention_days, %s) IS NOT NULL
                  AND finished_at + COALESCE(retention_days, %s) * interval '1 day' <= %s
                ORDER BY finished_at LIMIT %s""",
            [list(RUN_ENDED), default, default, now, limit],
        )
        return [str(row[0]) for row in cursor.fetchall()]


def run_purge(
    *, run_id: RunId, batch: int = PURGE_BATCH_BLOCKS, now: datetime | None = None
) -> dict[str, Any]:
    """Empty an expired run's text in short transactions, then mark it purged. Safe to run twice."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.purged_at is not None or not retention_expired(run, now):
        return {"purged": False}
    run_id = str(run.pk)
    batches = 0
    for start, end in block_index_ranges(run_id, batch):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(NO_WAIT)
            for statement in PURGE_STATEMENTS:
                cursor.execute(statement, [run_id, start, end])
        batches += 1
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in RUN_PURGE_STATEMENTS:
            cursor.execute(statement, [run_id])
        Run.objects.filter(pk=run_id, purged_at__isnull=True).update(purged_at=now or timezone.now())
    logger.info("run %s purged (retention): %s batches", run_id, batches)
    return {"purged": True, "batches": batches}


def runs_retention_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Beat: purge runs whose retention has passed; queue again deletions that stalled."""
    purged = 0
    for run_id in runs_due_for_purge(now=now):
        purged += bool(run_purge(run_id=run_id, now=now)["purged"])
    return {"purged": purged, "deletions_resumed": runs_delete_stalled(now=now)}
