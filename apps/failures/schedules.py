"""The project's beat schedules, installed into django-celery-beat's tables right after `migrate`, so
that operators see (and can pause) them in the admin before beat has ever started.

Rows are matched by name, as django-celery-beat's DatabaseScheduler does when it syncs
CELERY_BEAT_SCHEDULE on start, so the two never make duplicates. Interval, task and expiry follow the
settings; `enabled` is never touched, so an operator's pause survives a migrate.
"""

import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connections
from django_celery_beat.models import IntervalSchedule, PeriodicTask


def _seconds(schedule: Any) -> float | None:
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    if isinstance(schedule, int | float):
        return float(schedule)
    return None  # crontab and the like: left to beat's own sync


def beat_schedules_install(*, using: str = "default") -> list[str]:
    """Create or update one PeriodicTask per interval entry of CELERY_BEAT_SCHEDULE; returns names."""
    installed = []
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        seconds = _seconds(entry["schedule"])
        if seconds is None:
            continue
        every = max(1, round(seconds))
        interval = (
            IntervalSchedule.objects.using(using)
            .filter(every=every, period=IntervalSchedule.SECONDS).order_by("pk").first()
            or IntervalSchedule.objects.using(using).create(every=every, period=IntervalSchedule.SECONDS)
        )
        # CELERY_BEAT_SCHEDULE says `expires` (seconds); the database row calls it expire_seconds.
        expires = (entry.get("options") or {}).get("expires")
        PeriodicTask.objects.using(using).update_or_create(name=name, defaults={
            "task": entry["task"],
            "interval": interval, "crontab": None, "solar": None, "clocked": None,
            "args": json.dumps(list(entry.get("args") or [])),
            "kwargs": json.dumps(dict(entry.get("kwargs") or {})),
            "expire_seconds": max(1, int(expires)) if expires else None,
        })
        installed.append(name)
    return installed


def install_after_migrate(*, using: str = "default", **kwargs: Any) -> None:
    """post_migrate receiver. Does nothing while django-celery-beat's tables are absent (e.g. when
    migrating it backwards)."""
    if PeriodicTask._meta.db_table not in connections[using].introspection.table_names():
        return
    beat_schedules_install(using=using)
