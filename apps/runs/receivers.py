"""What the run engine does when something happens in a lower app, which may not call into runs."""

from typing import Any

from apps.runs.services.lifecycle import runs_resume_for_key
from apps.runs.services.team_budget import runs_resume_for_team_budget


def resume_runs_of_validated_key(sender: Any, *, key_id: int, **kwargs: Any) -> None:
    """`apps.keys.signals.key_validated`, in the validation's transaction: the runs the key paused by
    being rejected, or by an address refused at call time, resume."""
    runs_resume_for_key(key_id=key_id)


def resume_runs_of_raised_limit(sender: Any, *, team_id: int, **kwargs: Any) -> None:
    """`apps.teams.signals.spend_limit_changed`, after the change's commit: the team's runs its limit
    paused resume if the new limit pays for their next block (else the pump looks again)."""
    runs_resume_for_team_budget(team_id=team_id)
