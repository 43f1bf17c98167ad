"""Putting an item's block into a step's run, whatever state that run is in.

A step's run usually takes handed-on blocks while it is still open (queued, running, paused, or held
open by the pipeline). It may have ended already: every item that could reach it had stopped, so the
pipeline released it and it completed; then a dead-letter replay or a reseed of an earlier step sends
an item on again. Such a run works again as a **new pass of exactly the arriving blocks** (the
engine's own `start_pass`, recorded as a RunPass with scope `filter` and filter `{"pipeline": ...}`),
never by silently rewriting the pass that ended. A block the item already has in the step (it went
through before a reseed) is run again with its new input rather than created a second time: a block's
uid is unique in its run.
"""

from typing import Any

from django.db.models import F

from apps.runs.dispatch import run_dispatch_on_commit
from apps.runs.models import Block, BlockStatus, PassScope, Run, RunStatus
from apps.runs.services.reseed import start_pass
from apps.runs.transitions import BLOCK_COUNTER, RUN_ACTIVE


def place_blocks(run: Run, *, new: list[Block], rerun: dict[int, str], source: str) -> None:
    """Create `new` blocks in `run` and send the existing blocks of `rerun` (id -> new input) back to
    work, in the caller's transaction; the caller holds the run's row lock (`lock_run`) and has
    checked the run is not canceling or canceled. `source` names the step that handed them on (for
    a new pass's record)."""
    if new:
        Block.objects.bulk_create(new)
        Run.objects.filter(pk=run.pk).update(total_blocks=F("total_blocks") + len(new))
    for pk, text in rerun.items():
        Block.objects.filter(pk=pk).update(input=text)
    ids = [block.pk for block in new] + list(rerun)
    if not ids:
        return
    if run.status == RunStatus.COMPLETE:
        start_pass(
            run,
            Block.objects.filter(pk__in=ids),
            scope=PassScope.FILTER,
            filters={"pipeline": f"handed on by step {source}", "blocks": len(ids)},
            model=run.model,
            system_prompt=run.system_prompt,
            prompt_template=run.prompt_template,
            empty="no block to hand on",
            empty_field="uid",
        )
        return
    if rerun:
        _reopen_in_pass(run, list(rerun))
    if run.status in RUN_ACTIVE:
        run_dispatch_on_commit(run_id=run.pk)


def _reopen_in_pass(run: Run, ids: list[int]) -> None:
    """Blocks that ended in this pass go back to pending in it; the run's counters drop by exactly
    the blocks taken back (as a replay within a pass does)."""
    blocks = Block.objects.filter(pk__in=ids).exclude(status=BlockStatus.CLAIMED)
    counts: dict[str, Any] = {}
    for status, field in BLOCK_COUNTER.items():
        n = blocks.filter(status=status).count()
        if n:
            counts[field] = F(field) - n
    blocks.reopen(new_pass=False)
    if counts:
        Run.objects.filter(pk=run.pk).update(**counts)
