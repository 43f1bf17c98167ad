from typing import Any

from django.db import models
from django.db.models import Q

from apps.teams.access import AccessRule


class EventCode(models.TextChoices):
    """The fixed diagnostic taxonomy; every terminal failure and every retry carries one."""

    AUTH_FAILED = "AUTH_FAILED"
    INPUT_INVALID = "INPUT_INVALID"
    DOWNSTREAM_CALL_FAILED = "DOWNSTREAM_CALL_FAILED"
    MODEL_PARSE_ERROR = "MODEL_PARSE_ERROR"
    DB_WRITE_FAILED = "DB_WRITE_FAILED"
    PIPELINE_RETRY = "PIPELINE_RETRY"


class FailureState(models.TextChoices):
    """One vocabulary for a dead-letter row everywhere (the API's `state`, the admin's filter and
    column, a run's page, the command line). "Unresolved" means scheduled or parked."""

    SCHEDULED = "scheduled", "Scheduled (replayed at next_retry_at)"
    PARKED = "parked", "Parked (replayed only by hand)"
    RESOLVED = "resolved", "Resolved"


UNRESOLVED = "unresolved"


def failure_state(row: Any) -> str:
    """The state of a row (anything with resolved_at and next_retry_at, a model or a values() dict)."""
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    if get("resolved_at") is not None:
        return FailureState.RESOLVED
    return FailureState.PARKED if get("next_retry_at") is None else FailureState.SCHEDULED


def state_filter(state: str) -> Q:
    """Rows in a state of the vocabulary, or `unresolved` (scheduled or parked)."""
    return {
        FailureState.SCHEDULED: Q(resolved_at__isnull=True, next_retry_at__isnull=False),
        FailureState.PARKED: Q(resolved_at__isnull=True, next_retry_at__isnull=True),
        FailureState.RESOLVED: Q(resolved_at__isnull=False),
        UNRESOLVED: Q(resolved_at__isnull=True),
    }[state]


class PipelineFailure(models.Model):
    """The dead-letter row for a block that failed for good; beat replays due rows."""

    # Whoever may see or change its run may see or change it (apps/teams/access.py).
    access = AccessRule(path="run__", noun="failure")

    run = models.ForeignKey("runs.Run", null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="failures")
    # No database constraint (db_constraint=False): checking it made each deleted block cost a
    # foreign-key probe here, at commit, ~45% of deleting a run (docs/architecture.md, "Deletion").
    # Whatever deletes blocks deletes their failures first (apps/runs/services/deletion.py); the ORM
    # still sets it NULL when a block is deleted through it.
    block = models.ForeignKey("runs.Block", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="failures", db_constraint=False)
    failing_function = models.CharField(max_length=200)
    caller_function = models.CharField(max_length=200, blank=True, default="")
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64)
    error_message = models.TextField(blank=True, default="")
    attempt_count = models.PositiveIntegerField(default=0)
    # How often the replay task has put this block back to work.
    replay_count = models.PositiveIntegerField(default=0)
    # What was sent, secrets redacted (apps.core.redaction).
    payload_snapshot = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    failed_at = models.DateTimeField(auto_now_add=True)
    # When the replay is due (state "scheduled"); None on an unresolved row means "parked": replayed
    # only by hand.
    next_retry_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.TextField(blank=True, default="")

    class Meta:
        db_table = "pipeline_failures"
        ordering = ["-failed_at"]
        constraints = [
            # One open failure per block: a block that fails again updates its row.
            models.UniqueConstraint(
                fields=["block"],
                condition=Q(resolved_at__isnull=True),
                name="one_unresolved_failure_per_block",
            ),
        ]
        indexes = [
            models.Index(fields=["run", "-failed_at"], name="failure_run_failed_idx"),
            models.Index(fields=["failing_function", "-failed_at"], name="failure_function_idx"),
            models.Index(
                fields=["next_retry_at"],
                condition=Q(resolved_at__isnull=True),
                name="failure_unresolved_due_idx",
            ),
            # The console's dead letters (apps/console/selectors.py): unresolved rows by code and
            # state, and rows recorded per hour and code, each an index-only scan.
            models.Index(fields=["error_code"], include=["next_retry_at"],
                         condition=Q(resolved_at__isnull=True), name="failure_unresolved_code_idx"),
            models.Index(fields=["failed_at"], include=["error_code"], name="failure_failed_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.error_code} at {self.failing_function}"


class LogLevel(models.TextChoices):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class DiagnosticLog(models.Model):
    """Written on failure and retry paths only, to bound volume."""

    function_name = models.CharField(max_length=200)
    function_version = models.CharField(max_length=32)
    log_level = models.CharField(max_length=8, choices=LogLevel.choices)
    event_code = models.CharField(max_length=32, choices=EventCode.choices)
    message = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    run = models.ForeignKey("runs.Run", null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="diagnostics")
    # No database constraint, for the same reason as PipelineFailure.block.
    block = models.ForeignKey("runs.Block", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="diagnostics", db_constraint=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "diagnostic_logs"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(event_code__in=EventCode.values), name="diagnostic_event_code_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["event_code", "-created_at"], name="diagnostic_code_idx"),
            models.Index(fields=["function_name", "-created_at"], name="diagnostic_function_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_code} in {self.function_name}"
