"""The audit trail: one row per change a person made, through the API, the admin or a command.

Append-only. The application never updates or deletes a row (no service does; the admin is read-only),
and PostgreSQL refuses it too: a trigger (migration 0002) raises on UPDATE and DELETE. That is also why
the actor is two plain columns and not a foreign key: deleting a user must keep their records, and a
`SET_NULL` foreign key would be an UPDATE of every one of them, which the trigger refuses.
"""

from django.db import models


class Channel(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Admin"
    COMMAND = "command", "Management command"


class AuditRecord(models.Model):
    # Who: the user's id and name as they were at the time (no foreign key, see above). Empty for a
    # command run without `--as` by an OS user that is not a Conveyor user: actor_name is the OS user.
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_name = models.CharField(max_length=150, blank=True, default="")
    # What: a verb of the object type (`run.cancel`, `key.rotate`, ...; services.AuditAction).
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=64)
    # {"before": {...}, "after": {...}}: the fields that changed, as they read; never a secret.
    changes = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(auto_now_add=True)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    # The client's address (config.security.client_ip) for the API and the admin; empty for a command.
    remote_address = models.CharField(max_length=64, blank=True, default="")
    # The team the object belongs to, for team admins to read their team's records (teams: later).
    team_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "audit_records"
        ordering = ["-at", "-id"]
        permissions = []
        indexes = [
            models.Index(fields=["-at"], name="audit_at_idx"),
            models.Index(fields=["object_type", "object_id", "-at"], name="audit_object_idx"),
            models.Index(fields=["actor_id", "-at"], name="audit_actor_idx"),
            models.Index(fields=["team_id", "-at"], name="audit_team_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type} {self.object_id} by {self.actor_name or '?'}"
