"""Teams, their members' roles, and the spend limits a team (and a member within it) may carry.

A key, a run or a pipeline belongs to a team when its `team` is set, to its owner alone when it is
not. Who may see or change what is decided in one place: apps/teams/access.py."""

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    """admin: the team's members, keys and limits, and everything a member does; member: submits and
    manages the team's runs with the team's keys; viewer: reads."""

    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


class SpendPeriod(models.TextChoices):
    MONTH = "month", "Calendar month (UTC)"
    ROLLING = "rolling_days", "Rolling window of days"


class SpendLimit(models.Model):
    """A limit on what the team's runs (or one member's runs in the team) may spend in a period:
    the calendar month in UTC, or the last `window_days` days. Empty `limit_usd`: no limit.

    `alert_level` is the last threshold announced (0, 80 or 100 percent): raised with a conditional
    write, so each crossing is announced once; lowered again when a new period or a higher limit
    brings the spend back under it."""

    limit_usd = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    period = models.CharField(max_length=16, choices=SpendPeriod.choices, default=SpendPeriod.MONTH)
    window_days = models.PositiveSmallIntegerField(null=True, blank=True)
    alert_level = models.PositiveSmallIntegerField(default=0)
    # What the holder's runs spent from `spent_cache_since` to `spent_cache_until` (a moment at least a
    # minute old, so every call before it is committed): a claim sums only the calls after it (and
    # takes off those a rolling window has left behind) instead of the whole period's
    # (apps/runs/services/team_budget.py). Only a cache: empty, it is computed again.
    spent_cache_usd = models.DecimalField(max_digits=16, decimal_places=8, null=True, blank=True)
    spent_cache_since = models.DateTimeField(null=True, blank=True)
    spent_cache_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class Team(SpendLimit):
    name = models.CharField(max_length=100, unique=True)
    # Where the team's signed `team.spend` events are POSTed (apps/webhooks/), signed with the
    # signing secret of `webhook_signer` (the admin who set the URL). Empty: none.
    webhook_url = models.CharField(max_length=2000, blank=True, default="")
    webhook_signer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when its deletion was asked for (apps/teams/deletion.py): its members are gone, it is gone
    # from every list, and a background task deletes what it owns, then the row.
    deleting_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(limit_usd__gte=0) | Q(limit_usd__isnull=True), name="team_limit_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(period="month")
                | Q(period="rolling_days", window_days__gte=1, window_days__lte=366),
                name="team_period_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(SpendLimit):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team", "user"]
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="membership_one_per_user_and_team"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
            models.CheckConstraint(
                condition=Q(limit_usd__gte=0) | Q(limit_usd__isnull=True),
                name="membership_limit_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(period="month")
                | Q(period="rolling_days", window_days__gte=1, window_days__lte=366),
                name="membership_period_valid",
            ),
        ]
        indexes = [models.Index(fields=["user", "role"], name="membership_user_role_idx")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"
