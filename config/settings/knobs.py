"""The serving loop's and the lanes' knobs (SERVE_*, LANE_*), read strictly.

Each is parsed from the environment by one helper here, which refuses a value that is not a number of
the right kind with a message naming the knob and the value (`SERVE_MAX_IN_FLIGHT='abc' ...`), never a
traceback from deep inside the settings. `knob_problems` checks the final values again (a settings
module may set them without the environment), and the worker refuses to start on any
(config/celery_app.py, `worker_init`): a zero window or a negative ceiling would otherwise show up
only as a worker that never calls, or calls without bound.
"""

import os
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

# Integers; the others are positive numbers of any kind.
INTEGER_KNOBS = frozenset({
    "SERVE_MAX_IN_FLIGHT", "SERVE_PROCESSES_PER_HOST",
    "LANE_INITIAL_WINDOW", "LANE_WINDOW_AFTER_HEADERS", "LANE_MIN_WINDOW",
})
# 0 means "automatic" for these.
ZERO_MEANS_AUTO = frozenset({"SERVE_PROCESSES_PER_HOST"})
# Unset (None) means "automatic" for these.
MAY_BE_UNSET = frozenset({"SERVE_MAX_IN_FLIGHT"})
# Shares: at most 1.
SHARES = frozenset({"LANE_RATE_SAFETY", "LANE_OVERLOAD_CUT", "LANE_FAIR_RESERVE"})


def is_strict(name: str) -> bool:
    return name.startswith(("SERVE_", "LANE_"))


def _wanted(name: str) -> str:
    kind = "a positive integer" if name in INTEGER_KNOBS else "a positive number"
    if name in SHARES:
        kind = "a number above 0 and at most 1"
    if name in ZERO_MEANS_AUTO:
        kind += " (or 0: automatic)"
    if name in MAY_BE_UNSET:
        kind += " (or unset: automatic)"
    return kind


def problem(name: str, value: Any) -> str | None:
    """Why this value will not do for this knob, or None."""
    if value is None and name in MAY_BE_UNSET:
        return None
    integer = name in INTEGER_KNOBS
    fits = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not fits:
        return f"{name}={value!r} is not {_wanted(name)}"
    if value == 0 and name in ZERO_MEANS_AUTO:
        return None
    if value <= 0 or (name in SHARES and value > 1) or value != value:  # value != value: NaN
        return f"{name}={value!r} is not {_wanted(name)}"
    return None


def _parse(name: str, raw: str) -> int | float:
    text = raw.strip()
    try:
        value: int | float = int(text) if name in INTEGER_KNOBS else float(text)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not {_wanted(name)}") from None
    if problem(name, value):
        raise ImproperlyConfigured(f"{name}={raw!r} is not {_wanted(name)}")
    return value


def knob(name: str, default: int | float | None) -> Any:
    """A SERVE_* or LANE_* knob from the environment, `default` when unset or empty (None: a knob
    that may be left unset, meaning automatic)."""
    raw = os.environ.get(name, "")
    if not raw.strip():
        return default
    return _parse(name, raw)


def knob_problems(conveyor: Mapping[str, Any]) -> list[str]:
    """Every SERVE_* / LANE_* value in `settings.CONVEYOR` that will not do, one message each."""
    return [reason for name, value in sorted(conveyor.items())
            if is_strict(name) and (reason := problem(name, value))]

