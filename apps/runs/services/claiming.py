"""Claiming blocks: in block_index order, under a lease, never the same block twice at once, and never
more money reserved than the run's budget, or its team's spend limits, have left
(services/team_budget.py: a team run's claim locks the team's row after the run's).

Lock order everywhere in the engine is run row first, then its blocks: claims, result writes,
cancellation and lease expiry all start with `SELECT ... FROM runs_run FOR NO KEY UPDATE`, which
also serialises the counts below.

How many blocks a run may hold claimed: its `parallelism` plus a small claim-ahead allowance, so that
a worker holds the next blocks ready and a finished call's slot refills at once. Calls in flight stay
within `parallelism` exactly: the lane gate counts them in Redis before each call starts.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Min, Q, Sum
from django.utils import timezone

from apps.core.ids import RunId
from apps.providers.prompts import metadata_fields
from apps.runs.estimates import block_reservation
from apps.runs.models import Block, BlockStatus, PausedCause, Run, RunStatus
from apps.runs.services.budget import block_worst_usd, paused_reason, prompt_bytes
from apps.runs.services.finalize import run_finalize
from apps.runs.services.team_budget import Room, team_paused_reason, team_room
from apps.runs.transitions import RUN_ENDING, lock_run


@dataclass(frozen=True)
class ClaimedBlock:
    id: int
    uid: str
    input: str
    attempt: int
    # Its call's number in the current pass (what the Attempt row says).
    number: int = 0
    # Its metadata, read only when the run's template names a field of it.
    metadata: dict[str, Any] | None = None
    # What the budget holds for it (its claim's worst case, and a split's top-ups); 0 without a budget.
    reserved_usd: Decimal = Decimal(0)
    # Which of the run's models it is on (Run.models; a fallback moves it on).
    model_index: int = 0


@dataclass
class Claim:
    run_status: str
    blocks: list[ClaimedBlock] = field(default_factory=list)
    lease_token: uuid.UUID | None = None
    # The budget has no room for the next block until calls in flight settle.
    budget_wait: bool = False
    # The run's parallelism (plus what may be claimed ahead) is what cut the claim short, not a lack
    # of due blocks: there is more to claim once blocks claimed now are answered.
    at_parallelism: bool = False


def lease_seconds() -> float:
    conf = settings.CONVEYOR
    seconds: float = conf["PROVIDER_TIMEOUT_SECONDS"] + conf["LEASE_MARGIN_SECONDS"]
    return seconds


def _within_budget(run: Run, rows: list[tuple[int, int]], room: Room | None = None) -> list[int]:
    """The leading blocks whose worst-case cost fits what the budget (and the team's limits) have
    left, in order (at the priciest model the run may fall back to)."""
    budget = run.options.get("max_cost_usd")
    remaining = Decimal(str(budget)) - run.cost_usd - run.reserved_usd if budget is not None else None
    if room is not None:
        remaining = room.left if remaining is None else min(remaining, room.left)
    assert remaining is not None
    reservation = block_reservation(run.budget_spec, pack_size=run.pack_size, batch=run.in_batch_mode)
    taken = []
    for block_id, nbytes in rows:
        worst = reservation.fixed_usd + reservation.per_byte_usd * nbytes
        if worst > remaining:
            break
        remaining -= worst
        taken.append(block_id)
    return taken


@transaction.atomic
def blocks_claim(*, run_id: RunId, limit: int, worker: str, ahead: int = 0, answered: int = 0,
                 batch: bool = False) -> Claim:
    """Claim up to `limit` due pending blocks, never more than the run's parallelism (plus `ahead`)
    claimed at once, and with a budget, never more than it can pay for in the worst case.

    `answered`: blocks this worker holds claimed whose calls have already come back and whose
    results it is about to write: they are not in flight, so they do not count against the bound.
    `batch`: for a Message Batch, which the provider works through at its own pace: `limit` alone
    bounds the claim (parallelism is about calls in flight)."""
    now = timezone.now()
    run = lock_run(run_id)
    status = run.status
    if status == RunStatus.QUEUED and Run.objects.filter(pk=run.pk).start(now=now):
        status = RunStatus.RUNNING
    if status != RunStatus.RUNNING:
        return Claim(run_status=status)
    at_parallelism = False
    if not batch:
        claimed = Block.objects.filter(run_id=run.pk, status=BlockStatus.CLAIMED).count()
        free = run.parallelism + ahead + answered - claimed
        if free < limit:
            limit, at_parallelism = free, True
    if limit <= 0:
        return Claim(run_status=status, at_parallelism=at_parallelism)
    rows = list(
        Block.objects.due(now)
        .filter(run_id=run.pk)
        .order_by("block_index")
        .select_for_update(skip_locked=True)
        .values_list("id", prompt_bytes(run))[:limit]
    )
    if not rows:
        return Claim(run_status=status)
    at_parallelism = at_parallelism and len(rows) == limit  # fewer: no more due blocks either
    budgeted = run.options.get("max_cost_usd") is not None
    room = team_room(run, lock=True) if run.team_id is not None else None
    reserving = budgeted or room is not None
    ids = _within_budget(run, rows, room) if reserving else [block_id for block_id, _ in rows]
    if not ids and room is not None and (not budgeted or _within_budget(run, rows[:1])):
        # The team's limit is what stops it: wait for this run's calls in flight, else pause.
        worst = block_worst_usd(run, rows[0][1])
        if run.reserved_usd == 0 and Run.objects.filter(pk=run.pk).pause(
            cause=PausedCause.TEAM_BUDGET, reason=team_paused_reason(room, next_worst=worst),
        ):
            return Claim(run_status=RunStatus.PAUSED)
        return Claim(run_status=status, budget_wait=True)
    if not ids:
        budget = Decimal(str(run.options["max_cost_usd"]))
        worst = block_worst_usd(run, rows[0][1])
        if run.reserved_usd == 0 and Run.objects.filter(pk=run.pk).pause(
            cause=PausedCause.BUDGET,
            reason=paused_reason(next_worst=worst, left=budget - run.cost_usd, budget=budget),
        ):
            return Claim(run_status=RunStatus.PAUSED)
        return Claim(run_status=status, budget_wait=True)
    # One fresh token per claim: a block claimed again later gets another, which fences out
    # whoever held it before.
    token = uuid.uuid4()
    changes: dict[str, Any] = {}
    if reserving:
        reservation = block_reservation(run.budget_spec, pack_size=run.pack_size, batch=run.in_batch_mode)
        changes["reserved_usd"] = reservation.fixed_usd + reservation.per_byte_usd * prompt_bytes(run)
    chosen = Block.objects.filter(id__in=ids)
    chosen.claim(token=token, lease_expires_at=now + timedelta(seconds=lease_seconds()), worker=worker,
                 **changes)
    if reserving:
        reserved = chosen.aggregate(total=Sum("reserved_usd"))["total"] or 0
        Run.objects.filter(pk=run.pk).update(reserved_usd=F("reserved_usd") + reserved)
    blocks = chosen.order_by("block_index").values_list("id", "uid", "input", "attempts", "pass_attempts",
                                                        "reserved_usd", "model_index")
    metadata = dict(chosen.values_list("id", "metadata")) if metadata_fields(run.prompt_template) else {}
    return Claim(
        run_status=status,
        blocks=[ClaimedBlock(id=i, uid=u, input=t, attempt=a, number=n, metadata=metadata.get(i),
                             reserved_usd=r, model_index=m)
                for i, u, t, a, n, r, m in blocks],
        lease_token=token,
        at_parallelism=at_parallelism and len(ids) == len(rows),
    )


@transaction.atomic
def blocks_release(*, run_id: RunId, token: uuid.UUID, block_ids: list[int] | None = None) -> int:
    """Give claimed blocks back before any call was made for them (their lane closed, the worker is
    stopping): pending again at once, attempt and reservation returned. Blocks of a run being
    canceled are canceled instead, and the run may end with them."""
    run = lock_run(run_id)
    held = Block.objects.filter(run_id=run_id, status=BlockStatus.CLAIMED, lease_token=token)
    if block_ids is not None:
        held = held.filter(id__in=block_ids)
    reserved = held.aggregate(total=Sum("reserved_usd"))["total"] or 0
    changes: dict[str, Any] = {"reserved_usd": F("reserved_usd") - reserved} if reserved else {}
    if run.status in RUN_ENDING:
        released = held.cancel_held(token=token, now=timezone.now())
        changes["canceled_blocks"] = F("canceled_blocks") + released
    else:
        released = held.release(token=token)
    if changes:
        Run.objects.filter(pk=run_id).update(**changes)
    if run.status in RUN_ENDING:
        run_finalize(run_id=run_id)
    return released


def next_due_at(*, run_id: RunId) -> datetime | None:
    """When the run's earliest waiting block becomes due (None: nothing pending)."""
    agg = Block.objects.filter(run_id=run_id, status=BlockStatus.PENDING).aggregate(
        pending=Count("id"),
        due_now=Count("id", filter=Q(next_attempt_at__isnull=True)),
        earliest=Min("next_attempt_at"),
    )
    if not agg["pending"]:
        return None
    return timezone.now() if agg["due_now"] else agg["earliest"]
