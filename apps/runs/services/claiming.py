"""Claiming blocks: in block_index order, under a lease, never the same block twice at once.

Lock order everywhere in the engine is run row first, then its blocks: claims, result writes,
cancellation and lease expiry all start with `SELECT ... FROM runs_run FOR NO KEY UPDATE`, which
also serialises the parallelism count below.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from apps.runs.models import Block, BlockStatus, Run, RunStatus


@dataclass(frozen=True)
class ClaimedBlock:
    id: int
    uid: str
    input: str
    attempt: int


@dataclass
class Claim:
    run_status: str
    blocks: list[ClaimedBlock] = field(default_factory=list)
    lease_token: uuid.UUID | None = None
    # The key is throttled (429/529) until then: no call may start before it.
    throttled_until: datetime | None = None


def lease_seconds() -> float:
    conf = settings.CONVEYOR
    return conf["PROVIDER_TIMEOUT_SECONDS"] + conf["LEASE_MARGIN_SECONDS"]


def lock_run(run_id: Any) -> Run:
    return (
        Run.objects.select_for_update(no_key=True, of=("self",))
        .select_related("key")
        .get(pk=run_id)
    )


@transaction.atomic
def blocks_claim(*, run_id: Any, limit: int, worker: str) -> Claim:
    """Claim up to `limit` due pending blocks, never more than the run's parallelism in flight."""
    now = timezone.now()
    run = lock_run(run_id)
    if run.status == RunStatus.QUEUED and Run.objects.filter(pk=run.pk).start(now=now):
        run.status = RunStatus.RUNNING
    if run.status != RunStatus.RUNNING:
        return Claim(run_status=run.status)
    if run.key.throttled_until and run.key.throttled_until > now:
        return Claim(run_status=run.status, throttled_until=run.key.throttled_until)
    in_flight = Block.objects.filter(run_id=run.pk, status=BlockStatus.CLAIMED).count()
    limit = min(limit, run.parallelism - in_flight)
    if limit <= 0:
        return Claim(run_status=run.status)
    ids = list(
        Block.objects.due(now)
        .filter(run_id=run.pk)
        .order_by("block_index")
        .select_for_update(skip_locked=True)
        .values_list("id", flat=True)[:limit]
    )
    if not ids:
        return Claim(run_status=run.status)
    # One fresh token per claim: a block claimed again later gets another, which fences out
    # whoever held it before.
    token = uuid.uuid4()
    Block.objects.filter(id__in=ids).claim(
        token=token, lease_expires_at=now + timedelta(seconds=lease_seconds()), worker=worker
    )
    rows = Block.objects.filter(id__in=ids).order_by("block_index").values_list(
        "id", "uid", "input", "attempts"
    )
    return Claim(
        run_status=run.status,
        blocks=[ClaimedBlock(id=i, uid=u, input=t, attempt=a) for i, u, t, a in rows],
        lease_token=token,
    )


def next_due_at(*, run_id: Any) -> datetime | None:
    """When the run's earliest waiting block becomes due (None: nothing pending)."""
    agg = Block.objects.filter(run_id=run_id, status=BlockStatus.PENDING).aggregate(
        pending=Count("id"),
        due_now=Count("id", filter=Q(next_attempt_at__isnull=True)),
        earliest=Min("next_attempt_at"),
    )
    if not agg["pending"]:
        return None
    return timezone.now() if agg["due_now"] else agg["earliest"]
