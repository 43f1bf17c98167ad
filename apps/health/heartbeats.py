"""Heartbeats of the scheduled tasks: recorded by the task at its end, read by readiness and metrics."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from apps.health.models import Heartbeat

PUMP = "pump"


def heartbeat_record(name: str, summary: dict | None = None) -> None:
    """One upsert: the task `name` has just run to its end (with what it did, for the admin)."""
    Heartbeat.objects.update_or_create(name=name, defaults={"beat_at": timezone.now(),
                                                            "summary": summary or {}})


def heartbeat_last(name: str) -> datetime | None:
    """When `name` last ran to its end, or None if it never has."""
    return Heartbeat.objects.filter(name=name).values_list("beat_at", flat=True).first()
