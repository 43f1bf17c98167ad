"""What a key's fields must be: the input rules every write goes through (the API, the admin, the
commands). Messages describe a secret, never quote it."""

from typing import Any

from django.core.exceptions import ValidationError

from apps.core.addresses import BaseUrlError
from apps.keys.base_url import validate_base_url
from apps.keys.models import ProviderKey
from apps.lanes.limits import tier_choices

MIN_SECRET_LENGTH = 8
MAX_SECRET_LENGTH = 500


def clean_limits(*, tier: str, rpm_limit: Any, itpm_limit: Any, otpm_limit: Any) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    tier = tier or ""
    if tier and tier not in dict(tier_choices()):
        errors["tier"] = [f"Unknown tier {tier!r}; known: {', '.join(dict(tier_choices()))}."]
    values = {"rpm_limit": rpm_limit, "itpm_limit": itpm_limit, "otpm_limit": otpm_limit}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000_000:
            errors[name] = ["Must be a positive whole number (per minute), at most 1,000,000,000."]
    if errors:
        raise ValidationError(errors)
    return {"tier": tier, **values}


def clean_label(label: str) -> str:
    label = (label or "").strip()
    if not label:
        raise ValidationError({"label": ["A label is required."]})
    if len(label) > 100:
        raise ValidationError({"label": ["A label has at most 100 characters."]})
    return label


def clean_secret(secret: str) -> str:
    # Messages here describe the secret, never quote it.
    secret = (secret or "").strip()
    if not secret:
        raise ValidationError({"secret": ["A secret is required."]})
    # It travels in an HTTP header: printable ASCII only, or the client fails mid-request.
    if not secret.isascii() or any(ch.isspace() or not ch.isprintable() for ch in secret):
        raise ValidationError(
            {"secret": ["The secret must be printable ASCII without spaces or control characters."]}
        )
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        raise ValidationError(
            {"secret": [f"The secret must have {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters."]}
        )
    return secret


def clean_base_url(base_url: str, *, provider: str) -> str:
    try:
        return validate_base_url(base_url, provider=provider)
    except BaseUrlError as exc:
        raise ValidationError({"base_url": [ValidationError(exc.message, code=exc.rule)]}) from None


def check_label_free(*, owner_id: int, label: str, exclude_pk: int | None = None) -> None:
    taken = ProviderKey.objects.filter(owner_id=owner_id, label=label)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationError({"label": [f"You already have a key labelled {label!r}."]})
