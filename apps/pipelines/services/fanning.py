"""Fan-out and gather, inside the handoff's transaction.

**Fan-out.** A step with `fan_out` (an array field of its structured output) does not hand its item
on: each element of the array becomes a child item (`<uid>#<index>`, its input the element: text as
is, anything else as JSON; its parent's metadata; `parent` set), created `moving` in the fan-out step
and handed to the next step at once; the parent becomes `fanned_out`. An answer whose field is not an
array, or has more than PIPELINE_MAX_CHILDREN elements, stops the parent there, saying which.

**Gather.** A `gather` step takes the parent back once every one of its children has settled: each
child that succeeds in the step before the gather step is `done` there, one that fails or is filtered
stops as any item does. The last settlement of a parent's children (in whichever transaction it comes:
a result write, a step's end, a cancel) locks the parent row (`SELECT ... FOR UPDATE`) and only then
reads the children: of two transactions settling the last two children, the second waits for the
first's commit and sees both settled, and the parent moves `fanned_out -> moving` by a conditional
UPDATE, so it is gathered exactly once. Its block in the gather step reads the `done` children's
outputs of the step before as `{children}` (a JSON array in index order). A parent none of whose
children got there stops (`failed`, saying so). A fan-out that no later step gathers leaves the
parent `fanned_out` for good; its children finish in the last step.
"""

import json
from typing import Any

from django.conf import settings

from apps.pipelines.models import ItemStatus, PipelineItem, PipelineStep
from apps.runs.models import Block, BlockStatus


def _walk(document: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(document, dict) or part not in document:
            return None
        document = document[part]
    return document


def fan_out(step: PipelineStep, next_step: PipelineStep, *, uids: list[str], now: Any) -> None:
    """The items of `uids` that succeeded in `step` (a fan-out step) become their children, which go
    on to `next_step`; the caller's transaction."""
    from apps.pipelines.services.handoff import hand_to  # the handoff calls this module: no cycle at import

    items = PipelineItem.objects.filter(pipeline_id=step.pipeline_id)
    ready = list(
        items.filter(uid__in=uids)
        .moving_at(step.position)
        .select_for_update()
        .order_by("id")
        .values_list("pk", "uid", "metadata")
    )
    if not ready:
        return
    answers = dict(
        Block.objects.filter(run_id=step.run_id, uid__in=[uid for _, uid, _ in ready]).values_list(
            "uid", "output_json"
        )
    )
    limit = settings.CONVEYOR["PIPELINE_MAX_CHILDREN"]
    children: list[PipelineItem] = []
    fanned: list[int] = []
    for pk, uid, metadata in ready:
        elements = _walk(answers.get(uid), step.fan_out)
        problem = (
            "is not an array in the answer"
            if not isinstance(elements, list)
            else f"has {len(elements)} elements, more than {limit} (PIPELINE_MAX_CHILDREN)"
            if len(elements) > limit
            else ""
        )
        if problem:
            items.filter(pk=pk).stop(
                position=step.position,
                now=now,
                reason=f"step {step.name}: fan_out field {step.fan_out!r} {problem}",
            )
            continue
        assert isinstance(elements, list)
        fanned.append(pk)
        children.extend(
            PipelineItem(
                pipeline_id=step.pipeline_id,
                uid=f"{uid}#{index}",
                parent_id=pk,
                index=index,
                input=element if isinstance(element, str) else json.dumps(element, ensure_ascii=False),
                metadata=metadata,
                position=step.position,
            )
            for index, element in enumerate(elements)
        )
    items.filter(pk__in=fanned).fan_out(position=step.position, now=now)
    PipelineItem.objects.bulk_create(children, batch_size=2000)
    if children:
        hand_to(next_step, uids=[child.uid for child in children], now=now, source=step.name)
    # A parent with no child at all has nothing to wait for.
    _gather_parents(
        step.pipeline_id, [pk for pk in fanned if not any(c.parent_id == pk for c in children)], now=now
    )


def gather_ready(pipeline_id: Any, *, child_uids: list[str], now: Any) -> None:
    """The parents of these items (those that are children) whose children have all settled go on
    to their gather step; the caller's transaction."""
    if not child_uids:
        return
    parent_ids = list(
        PipelineItem.objects.filter(pipeline_id=pipeline_id, uid__in=child_uids, parent__isnull=False)
        .values_list("parent_id", flat=True)
        .distinct()
    )
    _gather_parents(pipeline_id, parent_ids, now=now)


def _gather_parents(pipeline_id: Any, parent_ids: list[int], *, now: Any) -> None:
    from apps.pipelines.services.handoff import hand_to  # see fan_out

    if not parent_ids:
        return
    steps = list(PipelineStep.objects.filter(pipeline_id=pipeline_id).order_by("position"))
    items = PipelineItem.objects.filter(pipeline_id=pipeline_id)
    # Locked first, children read after: the last of two concurrent settlements sees both.
    parents = list(
        items.filter(pk__in=parent_ids, status=ItemStatus.FANNED_OUT)
        .select_for_update()
        .order_by("id")
        .values_list("pk", "uid", "position")
    )
    for pk, uid, position in parents:
        gather = next((s for s in steps if s.position > position and s.gather), None)
        if gather is None or items.filter(parent_id=pk, status=ItemStatus.MOVING).exists():
            continue
        before = steps[gather.position - 2]
        if not items.filter(parent_id=pk, status=ItemStatus.DONE, position=before.position).exists():
            items.filter(pk=pk).childless(
                reason=f"step {gather.name}: no child of the item reached the end of step {before.name}",
                now=now,
            )
            continue
        if items.filter(pk=pk).gather(position=before.position, now=now):
            hand_to(gather, uids=[uid], now=now, source=before.name)


def gathered_outputs(step: PipelineStep, uids: list[str]) -> dict[str, list[Any]]:
    """For a gather step: each item's done children's outputs of the step before (the structured
    document, else the text), in index order."""
    before = PipelineStep.objects.get(pipeline_id=step.pipeline_id, position=step.position - 1)
    children = list(
        PipelineItem.objects.filter(
            pipeline_id=step.pipeline_id,
            parent__uid__in=uids,
            status=ItemStatus.DONE,
            position=before.position,
        )
        .order_by("parent_id", "index")
        .values_list("parent__uid", "uid")
    )
    outputs = {
        uid: (document if document is not None else text)
        for uid, text, document in Block.objects.filter(
            run_id=before.run_id, uid__in=[c for _, c in children], status=BlockStatus.SUCCEEDED
        ).values_list("uid", "output", "output_json")
    }
    gathered: dict[str, list[Any]] = {uid: [] for uid in uids}
    for parent, child in children:
        gathered[parent].append(outputs.get(child))
    return gathered
