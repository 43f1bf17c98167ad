"""API tokens: created for an authenticated user (the login endpoint, `manage.py create_token`) and
revoked (the logout endpoints, the admin). Tokens are django-rest-knox's: only a hash is stored, the
token itself is shown once, when it is created, and every token expires."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken


@dataclass(frozen=True)
class IssuedToken:
    # The token itself: give it to the user now; it cannot be shown again.
    token: str
    expiry: datetime
    instance: AuthToken


def default_ttl() -> timedelta:
    return settings.REST_KNOX["TOKEN_TTL"]


@transaction.atomic
def token_create(*, user: Any, ttl: timedelta | None = None) -> IssuedToken:
    """A new token for `user`, valid for `ttl` (default REST_KNOX["TOKEN_TTL"]); expired tokens of the
    user are removed first, and a user holds at most REST_KNOX["TOKEN_LIMIT_PER_USER"] live ones."""
    ttl = ttl or default_ttl()
    if ttl <= timedelta(0):
        raise ValidationError({"ttl": ["A token must be valid for some time."]})
    now = timezone.now()
    AuthToken.objects.filter(user=user, expiry__lt=now).delete()
    limit = settings.REST_KNOX.get("TOKEN_LIMIT_PER_USER")
    if limit is not None and AuthToken.objects.filter(user=user).count() >= limit:
        raise ValidationError({"token": [f"You already hold {limit} live tokens; revoke one first."]})
    instance, token = AuthToken.objects.create(user=user, expiry=ttl)
    return IssuedToken(token=token, expiry=instance.expiry, instance=instance)


def token_revoke(*, token: AuthToken) -> None:
    token.delete()


def tokens_revoke_all(*, user: Any) -> int:
    deleted, _ = AuthToken.objects.filter(user=user).delete()
    return deleted
