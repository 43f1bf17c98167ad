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


def record_team_spend(sender: Any, *, team_id: int, user_id: int | None, level: int, **event: Any) -> None:
    """`apps.teams.signals.spend_threshold_reached`, after the crossing's commit: the team's
    `team.spend` event. An error is logged; the crossing stays recorded on the limit."""
    from apps.webhooks.services import team_spend_record

    event.pop("signal", None)
    try:
        team_spend_record(team_id=team_id, user_id=user_id, level=level, **event)
    except Exception:
        logger.exception("team.spend event of team %s (%s%%) not recorded", team_id, level)
