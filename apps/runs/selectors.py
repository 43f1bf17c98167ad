"""Reads of runs and blocks, shared by the API, the admin and the management commands."""

import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Min, Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from apps.core.formatting import format_moment
from apps.core.ids import RunId
from apps.lanes.selectors import ceiling_bound_text, lane_state
from apps.runs.models import Attempt, AttemptOutcome, Block, BlockStatus, PausedCause, Run, RunKey
from apps.runs.transitions import RUN_ACTIVE, RunStatus
from apps.teams.access import visible_to

RESULT_FIELDS = (
    "uid", "block_index", "status", "output", "output_json", "metadata", "error_code", "error_message",
    "attempts", "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
    "cost_usd", "model", "prompt_version", "pass_number",
)


def runs_visible_to(*, user: Any, write: bool = False) -> QuerySet[Run]:
    """The runs `user` may read (or with `write`, change): apps/teams/access.py decides. `user=None`
    is the operator at the command line (`manage.py runs`): every run."""
    # A run being deleted is gone for everyone at once (its rows go in the background).
    return visible_to(user, Run.objects.filter(deleting_at__isnull=True), write=write)


def run_get_visible(*, user: Any, run_id: RunId) -> Run | None:
    """One run if `user` may see it; None for a missing run, another user's run and a malformed id
    alike, so callers cannot tell them apart."""
    try:
        pk = run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))
    except ValueError:
        return None
    return runs_visible_to(user=user).select_related("owner", "team").filter(pk=pk).first()


def run_for_idempotency_key(*, owner: Any, idempotency_key: str) -> Run | None:
    return Run.objects.filter(owner=owner, idempotency_key=idempotency_key).first()


RUN_ORDERINGS = {
    "created_at": ("created_at", "id"),
    "-created_at": ("-created_at", "-id"),
    "status": ("status", "-created_at", "-id"),
    "-status": ("-status", "-created_at", "-id"),
}


def runs_list(*, user: Any, team: int | None = None, status: str | None = None, model: str | None = None,
              created_after: datetime | None = None, created_before: datetime | None = None,
              ordering: str = "-created_at") -> QuerySet[Run]:
    runs = runs_visible_to(user=user).select_related("owner", "team")
    if team is not None:
        runs = runs.filter(team_id=team)
    if status:
        runs = runs.filter(status=status)
    if model:
        runs = runs.filter(model=model)
    if created_after:
        runs = runs.filter(created_at__gte=created_after)
    if created_before:
        runs = runs.filter(created_at__lt=created_before)
    return runs.order_by(*RUN_ORDERINGS[ordering])


def run_block_status_counts(*, run_id: RunId) -> dict[str, int]:
    """Blocks per status, counted from the blocks themselves (every status present, zeros included)."""
    counts = dict.fromkeys(BlockStatus.values, 0)
    rows = Block.objects.filter(run_id=run_id).values_list("status").annotate(n=Count("pk")).order_by()
    counts.update(dict(rows))
    return counts


def run_blocks(*, run_id: RunId, status: str | None = None, error_code: str | None = None
               ) -> QuerySet[Block]:
    """A run's blocks without their (possibly long) input and output."""
    blocks = Block.objects.filter(run_id=run_id).defer("input", "output", "output_json")
    if status:
        blocks = blocks.filter(status=status)
    if error_code:
        blocks = blocks.filter(error_code=error_code)
    return blocks


def block_get(*, run_id: RunId, uid: str) -> Block | None:
    """One block of a run with every attempt of every pass, oldest first."""
    if "\x00" in uid:  # PostgreSQL text cannot hold NUL, so no block has it
        return None
    attempts = Prefetch("attempt_set", queryset=Attempt.objects.order_by("created_at", "pk"))
    return Block.objects.filter(run_id=run_id, uid=uid).prefetch_related(attempts).first()


def run_result_rows(*, run_id: RunId, chunk_size: int = 2000) -> Iterator[dict[str, Any]]:
    """One flat dict of RESULT_FIELDS per block in block_index order, streamed from the database in
    chunks (a server-side cursor on PostgreSQL): memory is a chunk, whatever the run's size."""
    rows = (
        Block.objects.filter(run_id=run_id).order_by("block_index").values_list(*RESULT_FIELDS)
        .iterator(chunk_size=chunk_size)
    )
    for row in rows:
        yield dict(zip(RESULT_FIELDS, row, strict=True))


def run_results(*, run_id: RunId, chunk_size: int = 2000) -> Iterator[dict[str, Any]]:
    """One dict per block in block_index order, as a JSONL line of the results export."""
    for data in run_result_rows(run_id=run_id, chunk_size=chunk_size):
        usage = {k: data.pop(k) for k in (
            "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"
        )}
        usage["cost_usd"] = str(data.pop("cost_usd"))
        data["usage"] = usage
        error = {"code": data.pop("error_code"), "message": data.pop("error_message")}
        data["error"] = error if data["status"] == "failed" else None
        yield data


def run_call_counts(*, run_id: RunId) -> dict[str, int]:
    """Provider calls made for the run, and how many of them did not succeed. A packed call is one
    call for several blocks (one Attempt each, sharing the call's request id); an attempt without a
    request id (the call never got an answer) is a call of its own."""
    attempts = Attempt.objects.filter(run_id=run_id)
    answered = Count("request_id", distinct=True, filter=~Q(request_id=""))
    unanswered = Count("pk", filter=Q(request_id=""))
    failed = ~Q(outcome=AttemptOutcome.SUCCEEDED)
    counts = attempts.aggregate(
        answered=answered, unanswered=unanswered,
        failed_answered=Count("request_id", distinct=True, filter=failed & ~Q(request_id="")),
        failed_unanswered=Count("pk", filter=failed & Q(request_id="")),
    )
    return {"calls": counts["answered"] + counts["unanswered"],
            "not_succeeded": counts["failed_answered"] + counts["failed_unanswered"]}


def run_status_text(run: Run) -> str:
    """The status as a person should read it: a run ends `complete` when no block is left open, even
    if every block failed; the list, the summary and the admin say so instead of a bare "complete"."""
    if run.status == RunStatus.COMPLETE and run.failed_blocks and not run.completed_blocks:
        return "complete, all failed"
    return run.status


def run_waiting_reason(run: Run) -> str | None:
    """Why a run is not moving, in words for a person, or None if nothing holds it back: paused (the
    cause and the reason), its key's lane throttled (429) or stopped for overload until a moment, a
    worker's in-flight ceiling holding its lane's runs back while the lane has room, its
    budget waiting for calls in flight, or every open block waiting for its retry. What the progress
    display, `manage.py runs show`, the API and the admin say."""
    if run.status == RunStatus.PAUSED:
        cause = PausedCause(run.paused_cause).label if run.paused_cause in PausedCause.values else ""
        detail = "; ".join(part for part in (cause, run.paused_reason) if part)
        return f"paused: {detail}" if detail else "paused"
    if run.status not in RUN_ACTIVE:
        return None
    now = timezone.now()
    lane = lane_state(key=run.key, model=run.model) if run.key is not None else None
    if lane is not None and lane.throttled_until and lane.throttled_until > now:
        return f"key throttled by the provider (429) until {format_moment(lane.throttled_until)}"
    if lane is not None and lane.overloaded_until and lane.overloaded_until > now:
        return f"provider overloaded (529); the key's lane waits until {format_moment(lane.overloaded_until)}"
    if lane is not None and lane.ceiling_bound:
        return ceiling_bound_text(lane.ceiling_bound, lane.ceiling_bound_by)
    blocks = Block.objects.filter(run_id=run.pk, status__in=(BlockStatus.PENDING, BlockStatus.CLAIMED))
    state = blocks.aggregate(
        open=Count("pk"),
        ready=Count("pk", filter=Q(status=BlockStatus.CLAIMED) | Q(next_attempt_at__isnull=True)
                    | Q(next_attempt_at__lte=now)),
        next_retry=Min("next_attempt_at"),
    )
    if state["open"] and not state["ready"] and state["next_retry"] is not None:
        return f"waiting for retries until {format_moment(state['next_retry'])}"
    return None


# Attempts that were no provider call: a split's call the budget held back, a claim whose lease expired.
NOT_CALLS = (AttemptOutcome.BUDGET_WAIT, AttemptOutcome.LEASE_EXPIRED)


def run_keys_usage(*, run: Run) -> list[dict[str, Any]]:
    """The run's pool of keys (issue 22), in order, each with its state and what the run did with it:
    calls, blocks answered, spend, and the cache writes (its workspace's prefix; warming each key's
    cache once is what a pool costs in caching). One aggregate over the run's attempts by key."""
    members = list(RunKey.objects.filter(run_id=run.pk).select_related("key").order_by("position"))
    if not members and run.key is not None:  # a run made before pools: its key alone
        members = [RunKey(run=run, key=run.key, position=0, cache_warmed=run.cache_warmed)]
    usage = {
        row["key_id"]: row
        for row in Attempt.objects.filter(run_id=run.pk).exclude(outcome__in=NOT_CALLS)
        .values("key_id").order_by("key_id").annotate(
            calls=Count("id"),
            answered=Count("id", filter=Q(outcome=AttemptOutcome.SUCCEEDED, accepted=True)),
            cost_usd=Sum("cost_usd"), cache_creation_input_tokens=Sum("cache_creation_input_tokens"),
            cache_read_input_tokens=Sum("cache_read_input_tokens"))
    }
    rows = []
    for member in members:
        used = usage.get(member.key_id, {})
        rows.append({
            "key": member.key_id, "label": member.key.label, "suffix": member.key.suffix,
            "state": member.state, "left_cause": member.left_cause, "left_reason": member.left_reason,
            "left_at": member.left_at, "cache_warmed": member.cache_warmed,
            "calls": used.get("calls", 0), "blocks_answered": used.get("answered", 0),
            "cost_usd": used.get("cost_usd") or Decimal(0),
            "cache_creation_input_tokens": used.get("cache_creation_input_tokens") or 0,
            "cache_read_input_tokens": used.get("cache_read_input_tokens") or 0,
        })
    return rows


def run_models_usage(*, run: Run) -> list[dict[str, Any]]:
    """Per model that was called for the run: calls, blocks answered, spend (each call priced at its
    own model's prices). The primary and its fallbacks come first, in order, then any other model
    the provider named in its answers (a dated id for an alias)."""
    rows = list(
        Attempt.objects.filter(run_id=run.pk).exclude(outcome__in=NOT_CALLS)
        .values("model").order_by("model").annotate(
            calls=Count("id"),
            blocks_answered=Count("id", filter=Q(outcome=AttemptOutcome.SUCCEEDED, accepted=True)),
            cost_usd=Sum("cost_usd"))
    )
    order = {model: i for i, model in enumerate(run.models)}
    rows.sort(key=lambda row: (order.get(row["model"], len(order)), row["model"]))
    return [{**row, "cost_usd": row["cost_usd"] or Decimal(0)} for row in rows]
