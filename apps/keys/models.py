from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from apps.lanes.limits import tier_choices
from apps.teams.access import ADMINS, AccessRule


class Provider(models.TextChoices):
    ANTHROPIC = "anthropic", "Anthropic"


class ProviderKey(models.Model):
    """A user's own provider API key, or a team's (`team`: its admins manage it, its members submit
    runs with it). The secret is stored only encrypted and shown only by suffix."""

    access = AccessRule(write_roles=ADMINS, noun="key")

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider_keys"
    )
    # The team the key belongs to; empty: its owner's alone (apps/teams/access.py says who may do what).
    # PROTECT: a team goes only after its keys (the team deletion removes them first, in batches).
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, null=True, blank=True,
                             related_name="keys")
    provider = models.CharField(max_length=32, choices=Provider.choices, default=Provider.ANTHROPIC)
    label = models.CharField(max_length=100)
    # Fernet token of the secret; never the secret itself (see apps.core.crypto).
    secret_ciphertext = models.TextField()
    # The last four characters: the only part of the secret ever shown again.
    suffix = models.CharField(max_length=4)
    # Empty means the provider's official URL.
    base_url = models.CharField(max_length=500, blank=True, default="")
    # None: not validated yet; True/False: result of the last validation or of a provider 401/403.
    is_valid = models.BooleanField(null=True, default=None)
    validated_at = models.DateTimeField(null=True, blank=True)
    validation_error = models.TextField(blank=True, default="")
    # What the scheduler assumes about the key's rate limits before the provider's headers say: the
    # documented values of its tier, and/or explicit limits per minute (a cap that always applies,
    # e.g. to leave room for other users of the same key). Per model's rate-limit group.
    tier = models.CharField(max_length=16, blank=True, default="", choices=tier_choices())
    rpm_limit = models.PositiveIntegerField(null=True, blank=True,
                                            validators=[MinValueValidator(1)])
    itpm_limit = models.PositiveIntegerField(null=True, blank=True,
                                             validators=[MinValueValidator(1)])
    otpm_limit = models.PositiveIntegerField(null=True, blank=True,
                                             validators=[MinValueValidator(1)])
    # Bumped whenever the secret or base_url changes: a validation (or a provider 401) records its
    # verdict only if the revision it tested is still current, so a late answer about the old secret
    # can never mark the new one valid or invalid.
    revision = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "label"], name="key_label_unique_per_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.label} (…{self.suffix})"
