"""Items moving from step to step: the handoff, and the end of a step and of the pipeline.

The handoff runs inside the transaction that records a step's results (apps.runs.services.outcomes,
through the `blocks_settled` signal), so an item's block in step N+1 is created exactly when its
result in step N is: the lease fence lets one write per block through, a write that rolls back takes
its handoff with it, and the item row moves on only from the step it is in (a conditional UPDATE),
so nothing is handed on twice.

Lock order: a step's run row (locked by the recording), then the next step's run row; later steps
are only ever locked after earlier ones, by every path here, so two steps' writes cannot deadlock.
"""

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.pipelines.models import ItemStatus, Pipeline, PipelineItem, PipelineStatus, PipelineStep
from apps.pipelines.services.fanning import fan_out, gather_ready, gathered_outputs
from apps.pipelines.services.placement import place_blocks
from apps.pipelines.templates import ItemContext, StepOutput, TemplateProblem, parse_filter, render
from apps.pipelines.transitions import PIPELINE_OPEN
from apps.runs.models import Block, BlockStatus, PausedCause, Run
from apps.runs.services import run_finalize
from apps.runs.transitions import BLOCK_TERMINAL, RUN_ENDED, RUN_ENDING, lock_run

logger = logging.getLogger(__name__)


def step_hand_on(*, run_id: Any, settled: dict[int, str]) -> None:
    """Blocks of `run_id` that just ended for good: successes go on to the next step (or finish their
    item in the last), failures stop their item there. A run that is no pipeline's step: nothing."""
    step = PipelineStep.objects.filter(run_id=run_id).first()
    if step is None:
        return
    now = timezone.now()
    rows = list(Block.objects.filter(pk__in=list(settled)).values_list("pk", "uid", "error_code",
                                                                       "error_message"))
    succeeded = [uid for pk, uid, _, _ in rows if settled[pk] == BlockStatus.SUCCEEDED]
    items = PipelineItem.objects.filter(pipeline_id=step.pipeline_id)
    for pk, uid, code, message in rows:
        if settled[pk] != BlockStatus.SUCCEEDED:
            items.filter(uid=uid).stop(position=step.position, now=now,
                                       reason=f"step {step.name}: {settled[pk]}: {code}: {message}")
    if succeeded:
        # An item stopped here whose block succeeded after all (a dead-letter replay, in this pass or
        # as a new pass of an ended run) moves on like any other: this write is its block's one
        # success (the lease fence), so it is revived once.
        if items.filter(uid__in=succeeded).revive(position=step.position, now=now):
            Pipeline.objects.filter(pk=step.pipeline_id).reopen()
        _freshen(items.filter(uid__in=succeeded), position=step.position)
        next_step = (PipelineStep.objects.filter(pipeline_id=step.pipeline_id, position=step.position + 1)
                     .first())
        if step.fan_out and next_step is not None:
            fan_out(step, next_step, uids=succeeded, now=now)
        elif next_step is None or next_step.gather:
            # The last step, or the last a child runs before its parent is gathered: done here.
            items.filter(uid__in=succeeded).finish(position=step.position, now=now)
        else:
            hand_to(next_step, uids=succeeded, now=now, source=step.name)
    # Children that settled here (succeeded, failed, filtered or stopped at the next step): their
    # parents may now be gathered.
    gather_ready(step.pipeline_id, child_uids=[uid for _, uid, _, _ in rows], now=now)
    pipeline_id = step.pipeline_id
    transaction.on_commit(lambda: pipeline_settle(pipeline_id=pipeline_id), robust=True)


def _freshen(items: Any, *, position: int) -> None:
    """Items whose result at `position` was stale (a reseed upstream) have a new one: no longer."""
    # (Read and filtered here rather than by a jsonb `contains`, which SQLite, the demo's, lacks.)
    for pk, stale in items.exclude(stale_steps=[]).values_list("pk", "stale_steps"):
        if position in (stale or []):
            PipelineItem.objects.filter(pk=pk).update(stale_steps=[p for p in stale if p != position])


def hand_to(step: PipelineStep, *, uids: list[str], now: Any, source: str) -> None:
    """Blocks in `step` for the items of `uids` that are in the step before it (each once), in the
    caller's transaction."""
    before = step.position - 1
    items = PipelineItem.objects.filter(pipeline_id=step.pipeline_id)
    # Locked: only the transaction that moves an item from `before` hands it on.
    ready = list(items.filter(uid__in=uids).moving_at(before).select_for_update().order_by("id")
                 .values_list("uid", "input", "metadata"))
    if not ready:
        return
    run = lock_run(step.run_id)
    pipeline_status = Pipeline.objects.filter(pk=step.pipeline_id).values_list("status", flat=True).get()
    if run.status in RUN_ENDING or pipeline_status in (PipelineStatus.CANCELING, PipelineStatus.CANCELED):
        what = (f"step {step.name} was {run.status}" if run.status in RUN_ENDING
                else "the pipeline was canceled")
        items.filter(uid__in=[uid for uid, _, _ in ready]).stop(
            position=before, now=now, reason=f"{what} before the item reached it")
        return
    contexts = item_contexts(step, ready)
    check = parse_filter(step.filter) if step.filter else None
    # Items that went through this step before (a reseed sent them back): their block runs again.
    existing = dict(Block.objects.filter(run_id=run.pk, uid__in=[uid for uid, _, _ in ready])
                    .values_list("uid", "pk"))
    blocks: list[Block] = []
    rerun: dict[int, str] = {}
    filtered: list[str] = []
    broken: dict[str, str] = {}
    for uid, _, metadata in ready:
        context = contexts[uid]
        if check is not None and not check.takes(context):
            filtered.append(uid)
            continue
        try:
            text = render(step.input_template, context)
        except TemplateProblem as exc:
            broken[uid] = str(exc)
            continue
        if not text.strip():
            broken[uid] = "its input is empty"
            continue
        if uid in existing:
            rerun[existing[uid]] = text
            continue
        blocks.append(Block(run_id=run.pk, block_index=run.total_blocks + len(blocks), uid=uid, input=text,
                            metadata=metadata, model=run.model, pipeline_version=run.pipeline_version,
                            prompt_version=run.prompt_version, pass_number=run.current_pass))
    if blocks or rerun:
        place_blocks(run, new=blocks, rerun=rerun, source=source)
        if pipeline_status == PipelineStatus.PAUSED:
            # An ended step that took them as a new pass waits with the rest of the pipeline.
            Run.objects.filter(pk=run.pk).pause(cause=PausedCause.REQUESTED, reason="its pipeline was paused")
        moved = [b.uid for b in blocks] + [uid for uid, pk in existing.items() if pk in rerun]
        items.filter(uid__in=moved).advance(position=before, now=now)
    if filtered:
        items.filter(uid__in=filtered).filter_out(position=before, now=now,
                                                  reason=f"step {step.name}: not taken by {step.filter}")
    for uid, problem in broken.items():
        items.filter(uid=uid).stop(position=before, now=now, reason=f"step {step.name}: input: {problem}")


def item_contexts(step: PipelineStep, ready: list[tuple[str, str, Any]]) -> dict[str, ItemContext]:
    """What `step`'s template and filter read of each item: input, metadata, earlier steps' outputs
    (a child item reads its parent's for the steps up to the fan-out), and for a gather step the
    item's children's outputs of the step before."""
    earlier = dict(PipelineStep.objects.filter(pipeline_id=step.pipeline_id, position__lt=step.position)
                   .values_list("run_id", "name"))
    uids = [uid for uid, _, _ in ready]
    parents = dict(PipelineItem.objects.filter(pipeline_id=step.pipeline_id, uid__in=uids,
                                               parent__isnull=False).values_list("uid", "parent__uid"))
    found: dict[str, dict[str, StepOutput]] = {uid: {} for uid in [*uids, *parents.values()]}
    for run_id, uid, text, document in (Block.objects.filter(run_id__in=list(earlier), uid__in=list(found),
                                                             status=BlockStatus.SUCCEEDED)
                                        .values_list("run_id", "uid", "output", "output_json")):
        found[uid][earlier[run_id]] = StepOutput(text=text, document=document)
    outputs = {uid: {**found.get(parents.get(uid, ""), {}), **found[uid]} for uid in uids}
    children = gathered_outputs(step, uids) if step.gather else {}
    return {uid: ItemContext(input=text, metadata=metadata, outputs=outputs[uid], children=children.get(uid))
            for uid, text, metadata in ready}


def pipeline_settle(*, pipeline_id: Any) -> bool:
    """After a step's write or end, in a transaction of its own: every later step that no item can
    reach any more is released (and completes when its blocks are done), and the pipeline ends once
    every step's run has. Safe to call any number of times, from anywhere; returns True if this call
    ended the pipeline. Called after commit, so the last of two concurrent writes sees both."""
    with transaction.atomic():
        steps = list(PipelineStep.objects.filter(pipeline_id=pipeline_id).select_related("run")
                     .order_by("position"))
        items = PipelineItem.objects.filter(pipeline_id=pipeline_id, status=ItemStatus.MOVING)
        for step in steps[1:]:
            if step.run.held_open and not items.filter(position__lt=step.position).exists():
                runs = Run.objects.filter(pk=step.run_id)
                runs.release_hold()
                # A step no item reached was never claimed, so never started: it may end now.
                runs.start(now=timezone.now())
                run_finalize(run_id=step.run_id)
        statuses = Run.objects.filter(pk__in=[s.run_id for s in steps]).values_list("status", flat=True)
        if all(status in RUN_ENDED for status in statuses):
            return bool(Pipeline.objects.filter(pk=pipeline_id).end(now=timezone.now()))
    return False


def step_ended(*, run_id: Any) -> None:
    """A step's run ended (`run_finished`): its items still `moving` in it can no longer move (their
    blocks failed outside a result write, e.g. a lease lost on the last attempt, or were canceled)."""
    step = PipelineStep.objects.filter(run_id=run_id).first()
    if step is None:
        return
    with transaction.atomic():
        items_stop_stuck(step)
    pipeline_settle(pipeline_id=step.pipeline_id)


def items_stop_stuck(step: PipelineStep) -> None:
    """Items `moving` in `step` whose block there ended outside a result write (canceled, or failed
    on a lease lost at its last attempt) stop, with why. Their block will never announce itself."""
    now = timezone.now()
    stuck = (Block.objects.filter(run_id=step.run_id, status__in=BLOCK_TERMINAL)
             .exclude(status=BlockStatus.SUCCEEDED)
             .filter(uid__in=PipelineItem.objects.filter(pipeline_id=step.pipeline_id)
                     .moving_at(step.position).values("uid"))
             .values_list("uid", "status", "error_code"))
    items = PipelineItem.objects.filter(pipeline_id=step.pipeline_id)
    stopped = []
    for uid, status, code in stuck:
        items.filter(uid=uid).stop(position=step.position, now=now,
                                   reason=f"step {step.name}: {status}: {code}")
        stopped.append(uid)
    gather_ready(step.pipeline_id, child_uids=stopped, now=now)


def pipelines_settle_running() -> int:
    """Beat's safety net: settle every running pipeline. The handoff settles after its commit, which
    a process that dies right then never does; this finds what it left (a later step still held open
    that no item can reach). Returns how many pipelines it ended."""
    ended = 0
    for pipeline_id in Pipeline.objects.filter(status__in=PIPELINE_OPEN).values_list("pk", flat=True):
        ended += pipeline_settle(pipeline_id=pipeline_id)
    return ended
