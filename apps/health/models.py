from django.db import models


class Heartbeat(models.Model):
    """The last time a scheduled task (the pump) ran to its end: readiness asks
    whether beat is ticking, metrics report the lag. One row per task name, upserted."""

    name = models.CharField(max_length=64, primary_key=True)
    beat_at = models.DateTimeField()
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "heartbeats"

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%d %H:%M:%S}"
