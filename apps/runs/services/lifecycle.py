"""Cancelling, pausing and resuming runs, and changing their budget: the operations a person (or the
engine) asks for."""

from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from apps.core.errors import InvalidInput, StateConflict
from apps.core.ids import RunId
from apps.runs.dispatch import run_dispatch_on_commit
from apps.runs.models import Block, PausedCause, Run, RunKey, RunKeyState
from apps.runs.services.budget import next_block_worst_usd, paused_reason, resume_refusal
from apps.runs.services.finalize import run_finalize
from apps.runs.services.team_budget import team_resume_refusal
from apps.runs.transitions import RUN_CANCELABLE, RUN_USING_KEY, RunQuerySet, RunStatus, lock_run


class RunStateError(StateConflict):
    """The run is not in a state that allows this operation."""


@transaction.atomic
def run_cancel(*, run_id: RunId) -> Run:
    """Pending blocks are canceled at once; calls in flight finish and are recorded; the run ends
    `canceled` when the last of them is written (or now, if none is in flight)."""
    run = lock_run(run_id)
    if run.status not in RUN_CANCELABLE:
        raise RunStateError(f"a {run.status} run cannot be canceled")
    canceled = Block.objects.filter(run_id=run.pk).cancel_pending(now=timezone.now())
    runs = Run.objects.filter(pk=run.pk)
    runs.begin_canceling()
    runs.update(canceled_blocks=F("canceled_blocks") + canceled)
    if not run_finalize(run_id=run.pk):
        run_dispatch_on_commit(run_id=run.pk)  # calls in flight, or open batches to cancel
    run.refresh_from_db()
    return run


@transaction.atomic
def run_pause(*, run_id: RunId, reason: str = "paused by its owner") -> Run:
    """A person pauses a queued or running run: nothing more is claimed; calls in flight finish and
    are recorded. run_resume starts it again."""
    run = lock_run(run_id)
    if not Run.objects.filter(pk=run.pk).pause(cause=PausedCause.REQUESTED, reason=reason):
        raise RunStateError(f"a {run.status} run cannot be paused")
    run.refresh_from_db()
    return run


def run_pause_for_deleted_key(*, run_id: RunId) -> None:
    """The run's key is gone (deleted while the run was queued): nothing can call for it."""
    Run.objects.filter(pk=run_id).pause(cause=PausedCause.KEY_DELETED,
                                        reason="its provider key was deleted")


def pool_key_leave(*, key_id: int, cause: str, reason: str,
                   run_ids: list[RunId] | None = None) -> set[RunId]:
    """The key leaves the pool of every run still using it (or of `run_ids`): it cannot be used
    (rejected, blocked, unsafe). Returns the runs it left."""
    members = RunKey.objects.filter(key_id=key_id, state=RunKeyState.ACTIVE, run__status__in=RUN_USING_KEY)
    if run_ids is not None:
        members = members.filter(run_id__in=run_ids)
    left: set[RunId] = set(members.values_list("run_id", flat=True))
    if left:
        RunKey.objects.filter(key_id=key_id, run_id__in=left, state=RunKeyState.ACTIVE).update(
            state=RunKeyState.LEFT, left_cause=cause, left_reason=reason[:1000], left_at=timezone.now())
        Run.objects.filter(pk__in=left).update(pool_revision=F("pool_revision") + 1)
    return left


def pool_key_rejoin(*, key_id: int, run_id: RunId) -> None:
    """The key is back in the run's pool (its refusal was about a secret since replaced)."""
    if RunKey.objects.filter(key_id=key_id, run_id=run_id, state=RunKeyState.LEFT).update(
            state=RunKeyState.ACTIVE, left_cause="", left_reason="", left_at=None):
        Run.objects.filter(pk=run_id).update(pool_revision=F("pool_revision") + 1)


def runs_without_keys(runs: RunQuerySet) -> RunQuerySet:
    """Of these runs, those with no key left to call with: a pool with no active key, or (a run made
    before pools) no pool and no key."""
    active = RunKey.objects.filter(run=OuterRef("pk"), state=RunKeyState.ACTIVE)
    any_member = RunKey.objects.filter(run=OuterRef("pk"))
    return runs.filter(~Exists(active) & (Exists(any_member) | Q(key__isnull=True)))


def runs_pause_for_key(*, key_id: int, cause: str, reason: str) -> int:
    """A key that cannot be used (rejected, blocked, unsafe) leaves the pool of every run on it; a
    run pauses only when no key of its pool is left (a run without a pool: when it is its key)."""
    with transaction.atomic():
        left = pool_key_leave(key_id=key_id, cause=cause, reason=reason)
        pooled = RunKey.objects.filter(run=OuterRef("pk"))
        alone = Run.objects.filter(key_id=key_id).filter(~Exists(pooled))
        emptied = runs_without_keys(Run.objects.filter(pk__in=left))
        return alone.pause(cause=cause, reason=reason) + emptied.pause(cause=cause, reason=reason)


def run_resume(*, run_id: RunId) -> Run:
    """A paused run works again. One paused by its budget is refused while what is left cannot pay for
    its next block: resumed as it is, it would pause again at its first claim, having done nothing.
    The refusal says what to raise the budget to; raising it (run_set_budget) resumes the run."""
    with transaction.atomic():
        run = lock_run(run_id)
        if run.status != RunStatus.PAUSED:
            raise RunStateError(f"a {run.status} run cannot be resumed")
        refusal = resume_refusal(run) if run.paused_cause == PausedCause.BUDGET else None
        if run.paused_cause == PausedCause.TEAM_BUDGET:
            refusal = team_resume_refusal(run)
        if refusal:
            raise RunStateError(f"cannot resume: {refusal}")
        Run.objects.filter(pk=run.pk).resume()
        # A person says the keys are fixed: the pool's keys that left come back (a key still refused
        # leaves again at its next call, as a run on one key pauses again).
        key_causes = (PausedCause.KEY_REJECTED, PausedCause.KEY_BLOCKED, PausedCause.KEY_UNSAFE)
        if run.paused_cause in key_causes and RunKey.objects.filter(
                run_id=run.pk, state=RunKeyState.LEFT).update(
                state=RunKeyState.ACTIVE, left_cause="", left_reason="", left_at=None):
            Run.objects.filter(pk=run.pk).update(pool_revision=F("pool_revision") + 1)
        run_dispatch_on_commit(run_id=run.pk)
    run.refresh_from_db()
    return run


def runs_resume_for_key(*, key_id: int) -> int:
    """Once a key validates again, the runs it paused by being rejected, or by a base_url that broke
    the address rules at call time, resume by themselves (validation passed those rules just now)."""
    with transaction.atomic():
        rejoin = RunKey.objects.filter(key_id=key_id, state=RunKeyState.LEFT,
                                       left_cause__in=(PausedCause.KEY_REJECTED, PausedCause.KEY_UNSAFE))
        pooled = set(rejoin.values_list("run_id", flat=True))
        if pooled:  # the key is back in the pools it left for being refused
            rejoin.update(state=RunKeyState.ACTIVE, left_cause="", left_reason="", left_at=None)
            Run.objects.filter(pk__in=pooled).update(pool_revision=F("pool_revision") + 1)
        paused = Run.objects.filter(Q(key_id=key_id) | Q(pk__in=pooled)).paused_by(
            PausedCause.KEY_REJECTED, PausedCause.KEY_UNSAFE)
        ids = list(paused.values_list("pk", flat=True))
        Run.objects.filter(pk__in=ids).resume()
        for run_id in ids:
            run_dispatch_on_commit(run_id=run_id)
    return len(ids)


BUDGET_PLACES = Decimal("0.0001")
BUDGET_LIMIT = Decimal("100000000")  # what the options' max_cost_usd (12 digits, 4 places) can hold


def _budget(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        budget = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise InvalidInput("must be a decimal number of dollars, e.g. 1.50", field="max_cost_usd") from None
    if not budget.is_finite() or budget <= 0:
        raise InvalidInput("must be a positive number of dollars, or none for no budget",
                           field="max_cost_usd")
    if budget >= BUDGET_LIMIT:
        raise InvalidInput(f"must be less than {BUDGET_LIMIT:,}", field="max_cost_usd")
    return budget.quantize(BUDGET_PLACES)


def run_set_budget(*, run_id: RunId, max_cost_usd: Decimal | None) -> Run:
    """Set the run's budget (`options["max_cost_usd"]`), or remove it with None.

    A run paused by its budget resumes at once when the new budget can pay for its next block (or
    there is no budget any more); otherwise it stays paused, its reason saying what the next block
    could cost and what is left. Other paused runs stay paused: their cause is not the budget."""
    budget = _budget(max_cost_usd)
    with transaction.atomic():
        run = lock_run(run_id)
        options = {**(run.options or {})}
        options.pop("max_cost_usd", None)
        if budget is not None:
            options["max_cost_usd"] = str(budget)
        runs = Run.objects.filter(pk=run.pk)
        runs.update(options=options)
        if run.status == RunStatus.PAUSED and run.paused_cause == PausedCause.BUDGET:
            run.options = options
            worst = next_block_worst_usd(run)
            left = (budget or 0) - run.cost_usd - run.reserved_usd
            if budget is None or worst is None or worst <= left:
                runs.resume()
                run_dispatch_on_commit(run_id=run.pk)
            else:
                runs.update(paused_reason=paused_reason(next_worst=worst, left=left, budget=budget))
    run.refresh_from_db()
    return run
