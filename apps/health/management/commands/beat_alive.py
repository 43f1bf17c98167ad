"""`manage.py beat_alive [--max-age S]`: liveness of the scheduled work, from the pump's heartbeat.

Exits 0 if the pump ran to its end within the age (default READY_BEAT_MAX_AGE_SECONDS, the same
limit as /readyz), else 1. The heartbeat is written by the pump task at its end: beat sends it and a
worker on the control queue runs it, so a failure means one of the two is missing. For the beat
service's healthcheck; as a Kubernetes liveness probe, give it a failure threshold long enough that
a worker outage alone does not keep restarting beat.
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.health.checks import check_beat


class Command(BaseCommand):
    help = "Exit 0 if the pump (sent by beat, run by a worker) ran recently, else 1."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max-age", type=float, default=None,
                            help="seconds (default READY_BEAT_MAX_AGE_SECONDS: "
                                 f"{settings.CONVEYOR['READY_BEAT_MAX_AGE_SECONDS']:g})")

    def handle(self, *args: Any, **options: Any) -> None:
        result = check_beat(max_age=options["max_age"])
        if not result.ok:
            raise CommandError(result.error)
        self.stdout.write(f"the pump ran {result.details['pump_age_seconds']:g} s ago")
