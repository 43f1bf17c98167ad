"""Reseeding one step of a pipeline: the engine's reseed of the step's run (all its blocks, the failed
ones, or a filter: status, error code, prompt version, build), and then what it means downstream.

The items whose block the reseed took back go back to that step (`moving` there, whatever they were:
done, failed, filtered); every later step's result they already had was produced from the old output,
so its position goes into the item's `stale_steps`. When the item's new result in the reseeded step
is written, the handoff sends it on as usual: a later step that already has a block for the item runs
that block again with the new input (`services/placement.py`), and its position leaves `stale_steps`
when that new result is written. Items the reseed did not take are not touched, nor are their later
blocks: only the affected downstream blocks run again. Each result keeps its version stamp (the
block's `model`, `prompt_version`, `pipeline_version` and `pass_number`), so old and new outputs can
be told apart.
"""

from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.pipelines.models import ItemStatus, Pipeline, PipelineItem, PipelineStatus, PipelineStep
from apps.pipelines.services.control import PipelineStateError
from apps.runs.models import Block, BlockStatus, Run
from apps.runs.services.reseed import run_reseed


def pipeline_reseed_step(*, pipeline_id: Any, step_name: str, **reseed: Any) -> Run:
    """Reseed step `step_name` (`reseed`: run_reseed's arguments, scope and filters, optionally a new
    model or prompt) and send its affected items through the later steps again. Refused, with nothing
    changed, while the pipeline is paused or canceled, or while an affected item is still moving in a
    later step (wait until it stops there). Raises PipelineStep.DoesNotExist for an unknown step, and
    run_reseed's own errors (SubmissionError for bad fields or an empty selection, RunStateError for
    a step whose run is in progress)."""
    step = PipelineStep.objects.get(pipeline_id=pipeline_id, name=step_name)
    with transaction.atomic():
        pipeline = Pipeline.objects.get(pk=pipeline_id)
        if pipeline.status not in (PipelineStatus.RUNNING, PipelineStatus.COMPLETE):
            raise PipelineStateError(f"a {pipeline.status} pipeline cannot be reseeded")
        if PipelineStep.objects.filter(pipeline_id=pipeline_id).exclude(fan_out="").exists():
            raise PipelineStateError("reseeding a pipeline that fans out is not supported yet; reseed its "
                                     "steps' runs one by one (each re-runs that step only)")
        # The engine's reseed locks the step's run first (the handoff's order: run, items, next run).
        run = run_reseed(run_id=step.run_id, **reseed)
        later = dict(
            PipelineStep.objects.filter(pipeline_id=pipeline_id, position__gt=step.position).values_list(
                "run_id", "position"
            )
        )
        items = PipelineItem.objects.filter(pipeline_id=pipeline_id)
        reopened = Block.objects.filter(run_id=step.run_id, status=BlockStatus.PENDING).values_list(
            "uid", flat=True
        )
        affected = list(
            items.filter(uid__in=reopened)
            .exclude(status=ItemStatus.MOVING, position=step.position)
            .select_for_update()
            .order_by("id")
            .values_list("uid", "status", "position")
        )
        still = [
            (uid, position)
            for uid, status, position in affected
            if status == ItemStatus.MOVING and position > step.position
        ]
        if still:
            uid, position = still[0]
            raise PipelineStateError(
                f"{len(still)} item(s) of this reseed are still moving in a later step "
                f"(item {uid!r} in step {position}); reseed once they have stopped"
            )
        uids = [uid for uid, _, _ in affected]
        stale: dict[str, set[int]] = {uid: set() for uid in uids}
        for run_id, uid in Block.objects.filter(run_id__in=list(later), uid__in=uids).values_list(
            "run_id", "uid"
        ):
            stale[uid].add(later[run_id])
        now = timezone.now()
        for uid, positions in stale.items():
            current = set(items.filter(uid=uid).values_list("stale_steps", flat=True).get() or [])
            items.filter(uid=uid).send_back(position=step.position, stale_steps=sorted(current | positions),
                                            now=now)
        if uids:
            Pipeline.objects.filter(pk=pipeline_id).reopen()
    return run
