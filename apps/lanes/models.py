from django.db import models
from django.utils import timezone


class LaneMemory(models.Model):
    """What a lane learned, kept in PostgreSQL beside its state in Redis (apps/lanes/memory.py), so a
    deploy, a new host or a Redis flush does not start every lane again with a cautious few calls.

    `key_id` is the provider key's id, not a foreign key: lanes sit below keys (docs/architecture.md,
    "Apps in layers"), so they know a key by its id, as their Redis names do. A key's next response
    corrects whatever is remembered here (its headers win)."""

    key_id = models.BigIntegerField()
    # The model's rate-limit group (apps.lanes.limits.limit_group).
    group = models.CharField(max_length=100)
    # Learned from the anthropic-ratelimit-* headers, per minute; 0: not learned.
    rpm_limit = models.PositiveIntegerField(default=0)
    itpm_limit = models.PositiveBigIntegerField(default=0)
    otpm_limit = models.PositiveBigIntegerField(default=0)
    # The lane's latency EWMA, its concurrency window and its useful concurrency (Little's law).
    latency_ms = models.FloatField(default=0)
    window = models.FloatField(default=0)
    useful_concurrency = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key_id", "group"], name="lane_memory_one_per_lane"),
        ]
        verbose_name_plural = "lane memories"

    def __str__(self) -> str:
        return f"lane {self.key_id}:{self.group}"
