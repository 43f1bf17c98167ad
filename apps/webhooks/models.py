from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.teams.access import AccessRule
from apps.webhooks.transitions import DeliveryStatus, WebhookDeliveryQuerySet


class WebhookSecret(models.Model):
    """A user's signing secret (Standard Webhooks `whsec_...`), one per user. Stored only encrypted
    (apps.core.crypto, the provider keys' MultiFernet); shown once, when it is created or rotated;
    afterwards only `suffix`."""

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                 related_name="webhook_secret")
    # Fernet token of the whole `whsec_...` string; never the secret itself.
    secret_ciphertext = models.TextField()
    # The last four characters: the only part of the secret ever shown again.
    suffix = models.CharField(max_length=4)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"webhook secret of {self.owner} (…{self.suffix})"


class WebhookDelivery(models.Model):
    """One event to deliver: a run's pass ended. The event id (`webhook-id`) is fixed when the row is
    written and never changes, however often it is sent, so a receiver can drop a duplicate; the body
    is stored as the exact text sent, the signature is made afresh for each attempt (new timestamp).

    `next_attempt_at` doubles as the lease of an attempt in flight: a sender moves it past the end of
    its call before sending, so a crashed sender's delivery becomes due again by itself and the beat
    sweep sends it (at least once)."""

    access = AccessRule(path="run__", noun="delivery")

    # A run's event (`run.finished`); or, with `team` instead, a team's (`team.spend`: pass_number 0).
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, null=True, blank=True,
                            related_name="webhook_deliveries")
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, null=True, blank=True,
                             related_name="webhook_deliveries")
    pass_number = models.PositiveIntegerField()
    event_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=64, default="run.finished")
    # Where it goes: the run's webhook_url when the event was recorded.
    url = models.CharField(max_length=2000)
    # The JSON body, as the exact text that is sent (and signed).
    body = models.TextField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    # The receiver's HTTP status of the last attempt (a 3xx too: redirects are never followed).
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # Why the last attempt failed, as a class (http_500, timeout, connect_error, redirect,
    # address_not_allowed, url_not_allowed, ...) and a description of our own: never the receiver's body.
    last_error = models.CharField(max_length=64, blank=True, default="")
    last_error_detail = models.CharField(max_length=300, blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # After this moment a failed attempt gives up (status failed); a redelivery moves it on.
    give_up_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["run", "pass_number"], name="webhook_delivery_one_per_pass"),
            models.CheckConstraint(condition=Q(status__in=DeliveryStatus.values),
                                   name="webhook_delivery_status_valid"),
        ]
        indexes = [
            # The sweep: pending deliveries that are due.
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"),
                         name="webhook_delivery_due_idx"),
        ]

    def __str__(self) -> str:
        if self.run_id is None:
            return f"{self.event_type} {self.event_id} (team {self.team_id})"
        return f"{self.event_type} {self.event_id} (pass {self.pass_number} of {self.run_id})"
