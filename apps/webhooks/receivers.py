"""The receiver of `apps.runs.signals.run_finished`: it records the pass's event for delivery.

It runs in whatever process ended the run (a serving loop, the pump), after the run's commit. It must
never break that caller: any error is logged and left to the beat sweep, which records the events of
ended passes that have none (apps.webhooks.services.deliveries_record_missing)."""

import logging
from typing import Any

from apps.core.ids import RunId

logger = logging.getLogger(__name__)


def record_run_finished(sender: Any, *, run_id: RunId, status: str, pass_number: int, **kwargs: Any) -> None:
    from apps.webhooks.services import delivery_record

    try:
        delivery_record(run_id=run_id, pass_number=pass_number, status=status)
    except Exception:
        logger.exception("webhook event of run %s pass %d not recorded now; the sweep will record it",
                         run_id, pass_number)
