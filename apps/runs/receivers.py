"""What the run engine does when something happens in a lower app, which may not call into runs."""

from typing import Any

from apps.runs.services.lifecycle import runs_resume_for_key


def resume_runs_of_validated_key(sender: Any, *, key_id: int, **kwargs: Any) -> None:
    """`apps.keys.signals.key_validated`, in the validation's transaction: the runs the key paused by
    being rejected, or by an address refused at call time, resume."""
    runs_resume_for_key(key_id=key_id)
