"""What a pipeline does when the run engine reports on one of its steps (the engine sits below this
app and does not import it)."""

import logging
from typing import Any

from apps.pipelines.services.handoff import step_ended, step_hand_on

logger = logging.getLogger(__name__)


def hand_on_settled_blocks(sender: Any, *, run_id: Any, settled: dict[int, str], **kwargs: Any) -> None:
    """`apps.runs.signals.blocks_settled`, inside the result write's transaction: the handoff. An
    error here rolls the result back with it (written again by the caller): a result is never kept
    without its handoff."""
    step_hand_on(run_id=run_id, settled=settled)


def settle_after_step_ended(sender: Any, *, run_id: Any, **kwargs: Any) -> None:
    """`apps.runs.signals.run_finished`, after commit: items left in the step stop; later steps
    that no item can reach are released; the pipeline ends when every step has. Never raises: the
    run's end is committed, and its other receivers (webhooks) must still hear of it."""
    try:
        step_ended(run_id=run_id)
    except Exception:
        logger.exception("pipeline step %s ended; settling its pipeline failed", run_id)
