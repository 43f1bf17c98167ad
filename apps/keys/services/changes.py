"""Creating, changing and deleting provider keys. Secrets enter here (`key_create`, `key_update`) and
are stored only encrypted; a new secret or base_url makes the key unvalidated again and queues a
validation (validation.py)."""

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from apps.core.crypto import encrypt_secret
from apps.core.errors import StateConflict
from apps.keys.models import Provider, ProviderKey
from apps.keys.services.rules import (
    check_label_free,
    clean_base_url,
    clean_label,
    clean_limits,
    clean_secret,
)
from apps.keys.services.validation import key_schedule_validation
from apps.teams.access import team_role
from apps.teams.models import Role

SECRET_FOR_NEW_BASE_URL = (
    "Changing base_url needs the secret again in the same request: a stored secret is only ever "
    "sent to the base_url it was entered with."
)


class KeyInUse(StateConflict):
    """The key cannot be deleted because runs still refer to it; the message says which and why."""

    code = "key_in_use"


@transaction.atomic
def key_create(*, owner: Any, label: str, secret: str, base_url: str = "",
               provider: str = Provider.ANTHROPIC, tier: str = "", rpm_limit: int | None = None,
               itpm_limit: int | None = None, otpm_limit: int | None = None, team: Any = None
               ) -> ProviderKey:
    """A new key, personal or (with `team`) the team's: only the team's admins add its keys."""
    if team is not None and team_role(owner, team.pk) != Role.ADMIN:
        raise PermissionDenied(f"only the admins of team {team.name} add its keys")
    label = clean_label(label)
    secret = clean_secret(secret)
    base_url = clean_base_url(base_url, provider=provider)
    limits = clean_limits(tier=tier, rpm_limit=rpm_limit, itpm_limit=itpm_limit, otpm_limit=otpm_limit)
    check_label_free(owner_id=owner.pk, label=label)
    key = ProviderKey.objects.create(
        owner=owner,
        team=team,
        provider=provider,
        label=label,
        secret_ciphertext=encrypt_secret(secret),
        suffix=secret[-4:],
        base_url=base_url,
        **limits,
    )
    key_schedule_validation(key=key)
    return key


LIMIT_FIELDS = ("rpm_limit", "itpm_limit", "otpm_limit")


@transaction.atomic
def key_set_limits(*, key: ProviderKey, **changes: Any) -> ProviderKey:
    """Change what the scheduler assumes about the key's rate limits (`tier`, and explicit
    `rpm_limit` / `itpm_limit` / `otpm_limit` per minute, None to clear). Only the given ones
    change; nothing is revalidated, since the secret and its address are the same."""
    unknown = sorted(set(changes) - {"tier", *LIMIT_FIELDS})
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    current = ProviderKey.objects.select_for_update().get(pk=key.pk)
    merged = {name: changes.get(name, getattr(current, name)) for name in ("tier", *LIMIT_FIELDS)}
    cleaned = clean_limits(**merged)
    for name, value in cleaned.items():
        setattr(current, name, value)
    current.save(update_fields=[*cleaned, "updated_at"])
    return current


@transaction.atomic
def key_update(*, key: ProviderKey, label: str | None = None, base_url: str | None = None,
               secret: str | None = None) -> ProviderKey:
    """Change what was given. A new secret or base_url makes the key unvalidated again and queues a
    validation; bumping `revision` makes any validation of the old values drop its result.

    A new base_url needs the secret again in the same call: a stored secret is only ever sent to the
    base_url it was entered with, so whoever can edit a key (a stolen API token, another staff
    member) cannot point it at their own host and have the validation deliver the secret there."""
    # Compare against the stored row, not `key`: the admin hands us an instance it already changed.
    current = ProviderKey.objects.select_for_update().get(pk=key.pk)
    changes: dict[str, object] = {}
    if label is not None:
        cleaned_label = clean_label(label)
        if cleaned_label != current.label:
            check_label_free(owner_id=current.owner_id, label=cleaned_label, exclude_pk=current.pk)
            changes["label"] = cleaned_label
    if base_url is not None:
        cleaned = clean_base_url(base_url, provider=current.provider)
        if cleaned != current.base_url:
            if secret is None:
                raise ValidationError({"secret": [ValidationError(SECRET_FOR_NEW_BASE_URL,
                                                                  code="required_with_base_url")]})
            changes["base_url"] = cleaned
    if secret is not None:
        cleaned_secret = clean_secret(secret)
        changes["secret_ciphertext"] = encrypt_secret(cleaned_secret)
        changes["suffix"] = cleaned_secret[-4:]
    if not changes:
        return current
    revalidate = "base_url" in changes or "secret_ciphertext" in changes
    if revalidate:
        changes.update(is_valid=None, validated_at=None, validation_error="", revision=current.revision + 1)
    for name, value in changes.items():
        setattr(current, name, value)
    current.save(update_fields=[*changes, "updated_at"])
    if revalidate:
        key_schedule_validation(key=current)
    return current


@transaction.atomic
def key_delete(*, key: ProviderKey) -> None:
    # The row lock waits for (and then blocks) a run being created on this key: inserting a run takes
    # a FOR KEY SHARE lock on the key row, which conflicts with FOR UPDATE.
    current = ProviderKey.objects.select_for_update().filter(pk=key.pk).first()
    if current is None:
        return
    # The runs app says which runs use their key (RunManager.using_key, through the reverse relation).
    active = current.runs.using_key().count()
    if active:
        raise KeyInUse(
            f"This key is used by {active} active run(s) (queued, running, paused or canceling). "
            "Cancel them or let them finish, then delete the key."
        )
    # Finished runs keep their history; their `key` becomes NULL (Run.key is SET_NULL).
    current.delete()
