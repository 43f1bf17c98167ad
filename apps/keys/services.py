"""Every write to provider keys: the API, the admin, the management commands and the run engine all call
these functions, so the rules (encryption, base_url checks, revalidation, delete guard) live once.

Secrets enter through `key_create` / `key_update` and leave only through `key_secret`; nothing here puts
a secret into an exception, a log line or a stored error message.
"""

import logging
from typing import Any

import anthropic
from celery import current_app
from cryptography.fernet import InvalidToken
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.addresses import BaseUrlError
from apps.core.crypto import RotationResult, decrypt_secret, encrypt_secret, reencrypt_secret
from apps.core.errors import StateConflict
from apps.core.logcontext import log_context
from apps.core.redaction import redact_text
from apps.failures.models import EventCode, LogLevel
from apps.failures.services import diagnostic_log
from apps.keys.base_url import effective_base_url, validate_base_url
from apps.keys.models import Provider, ProviderKey
from apps.keys.signals import key_validated
from apps.lanes.limits import tier_choices
from apps.providers.catalog import catalog
from apps.providers.client import make_client
from apps.providers.errors import FailureKind, classify

logger = logging.getLogger(__name__)

VALIDATE_KEY_TASK = "conveyor.keys.validate_key"
# The validation call is tiny; a slow answer is a problem in itself, and the task has a time limit.
VALIDATION_TIMEOUT_SECONDS = 20.0
MIN_SECRET_LENGTH = 8
MAX_SECRET_LENGTH = 500
MAX_ERROR_LENGTH = 2000
SECRET_FOR_NEW_BASE_URL = (
    "Changing base_url needs the secret again in the same request: a stored secret is only ever "
    "sent to the base_url it was entered with."
)


class KeyInUse(StateConflict):
    """The key cannot be deleted because runs still refer to it; the message says which and why."""

    code = "key_in_use"


class KeyValidationInconclusive(Exception):
    """The provider could not answer (throttled, overloaded, unreachable): try the validation later.
    The message is already redacted."""


# --- create, update, delete --------------------------------------------------------------------------

@transaction.atomic
def key_create(*, owner, label: str, secret: str, base_url: str = "",
               provider: str = Provider.ANTHROPIC, tier: str = "", rpm_limit: int | None = None,
               itpm_limit: int | None = None, otpm_limit: int | None = None) -> ProviderKey:
    label = _clean_label(label)
    secret = _clean_secret(secret)
    base_url = _clean_base_url(base_url, provider=provider)
    limits = _clean_limits(tier=tier, rpm_limit=rpm_limit, itpm_limit=itpm_limit, otpm_limit=otpm_limit)
    _check_label_free(owner_id=owner.pk, label=label)
    key = ProviderKey.objects.create(
        owner=owner,
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
    cleaned = _clean_limits(**merged)
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
        cleaned_label = _clean_label(label)
        if cleaned_label != current.label:
            _check_label_free(owner_id=current.owner_id, label=cleaned_label, exclude_pk=current.pk)
            changes["label"] = cleaned_label
    if base_url is not None:
        cleaned = _clean_base_url(base_url, provider=current.provider)
        if cleaned != current.base_url:
            if secret is None:
                raise ValidationError({"secret": [ValidationError(SECRET_FOR_NEW_BASE_URL,
                                                                  code="required_with_base_url")]})
            changes["base_url"] = cleaned
    if secret is not None:
        cleaned_secret = _clean_secret(secret)
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


# --- secrets -----------------------------------------------------------------------------------------

def key_secret(*, key: ProviderKey) -> str:
    """The plaintext secret, for a provider call only. Never log, store or return it."""
    return decrypt_secret(key.secret_ciphertext)


def keys_reencrypt() -> RotationResult:
    """Re-encrypt every stored secret under the newest KEY_ENCRYPTION_KEYS entry.

    One short UPDATE per key rather than one long transaction: rotation can run while the service is
    live, every ciphertext stays readable throughout (old and new keys are both configured), and a
    rotation that stops half way is finished by running it again.
    """
    result = RotationResult()
    rows = list(ProviderKey.objects.order_by("pk").values_list("pk", "secret_ciphertext"))
    for key_id, ciphertext in rows:
        try:
            rotated = reencrypt_secret(ciphertext)
        except InvalidToken:
            result.unreadable.append(key_id)
            continue
        # Conditional: a secret replaced since we read it is already under the newest key.
        if ProviderKey.objects.filter(pk=key_id, secret_ciphertext=ciphertext).update(
            secret_ciphertext=rotated
        ):
            result.reencrypted += 1
        else:
            result.changed_meanwhile += 1
    return result


# --- validation --------------------------------------------------------------------------------------

def key_schedule_validation(*, key: ProviderKey) -> None:
    """Queue a validation once the current transaction commits (never before: the worker would not
    see the row, or would see the old secret)."""
    key_id = key.pk
    # By the task's name: the task module imports this one, never the other way round.
    validation = current_app.signature(VALIDATE_KEY_TASK, args=(key_id,))
    # robust: a broker outage must not turn a saved key into a 500; the key stays "not validated yet"
    # and the user (or staff, in the admin) can ask again.
    transaction.on_commit(validation.delay, robust=True)


def key_validate(*, key: ProviderKey) -> ProviderKey:
    """One cheap real call (count_tokens) with the key; record the outcome on the key.

    Not atomic as a whole on purpose: no transaction stays open during the provider call. The result
    is written only if the key's `revision` is still the one tested (else a newer validation is queued
    and will record its own). Raises KeyValidationInconclusive when the provider could not say.
    """
    with log_context(key_id=key.pk, secrets=_secrets_of(key)):
        return _validate(key)


def _validate(key: ProviderKey) -> ProviderKey:
    revision = key.revision
    secrets = _secrets_of(key)
    if not secrets:
        return _record_validation(key, revision, is_valid=False,
                                  error="The stored secret cannot be decrypted with the configured "
                                        "KEY_ENCRYPTION_KEYS; enter the secret again.")
    # Checked again at call time: the host's DNS may have changed since the URL was saved.
    try:
        validate_base_url(key.base_url, provider=key.provider)
    except BaseUrlError as exc:
        error = f"base_url: {exc.message}"
        if exc.rule == "resolve":  # DNS can fail for a moment; that says nothing about the key
            _record_validation(key, revision, is_valid=None, error=error)
            raise KeyValidationInconclusive(error) from None
        return _record_validation(key, revision, is_valid=False, error=error)
    base_url = effective_base_url(provider=key.provider, base_url=key.base_url)
    try:
        with make_client(api_key=secrets[0], base_url=base_url,
                         timeout=VALIDATION_TIMEOUT_SECONDS) as client:
            client.messages.count_tokens(
                model=catalog().default_model,
                messages=[{"role": "user", "content": "ping"}],
            )
    except anthropic.APIError as exc:
        failure = classify(exc, secrets=secrets)
        error = redact_text(str(failure), secrets)
        if failure.kind in (FailureKind.THROTTLED, FailureKind.OVERLOADED, FailureKind.RETRYABLE):
            _record_validation(key, revision, is_valid=None, error=error)
            raise KeyValidationInconclusive(error) from None
        # 402 / spend limits: the key authenticates but cannot spend now; its runs stay paused.
        if failure.kind in (FailureKind.KEY_INVALID, FailureKind.KEY_BLOCKED):
            _auth_failed(key, failure.http_status, error)
        return _record_validation(key, revision, is_valid=failure.kind == FailureKind.KEY_BLOCKED,
                                  error=error)
    return _record_validation(key, revision, is_valid=True, error="")


def _auth_failed(key: ProviderKey, http_status: int | None, error: str) -> None:
    diagnostic_log(function_name=VALIDATE_KEY_TASK, event_code=EventCode.AUTH_FAILED,
                   level=LogLevel.WARNING, message=f"provider key {key.pk} refused at validation: {error}",
                   metadata={"key_id": key.pk, "http_status": http_status}, secrets=_secrets_of(key))


@transaction.atomic
def key_mark_invalid(*, key_id: int, error: str, revision: int | None = None) -> bool:
    """Record that the provider rejected the key (401/403 during a run). Returns False if the key is
    gone, or (when `revision` is given) was changed since the failing call was made."""
    key = ProviderKey.objects.filter(pk=key_id).first()
    if key is None:
        return False
    error = _clip(redact_text(error, _secrets_of(key)))
    rows = ProviderKey.objects.filter(pk=key_id)
    if revision is not None:
        rows = rows.filter(revision=revision)
    updated = rows.update(is_valid=False, validated_at=timezone.now(), validation_error=error)
    if updated:
        logger.warning("provider key %s marked invalid: %s", key_id, error)
    return bool(updated)


def _record_validation(key: ProviderKey, revision: int, *, is_valid: bool | None,
                       error: str) -> ProviderKey:
    """Write a validation outcome if the key still holds what was tested; resume its runs on success.

    `is_valid=None` records only the error and time (an inconclusive attempt keeps the last verdict).
    """
    now = timezone.now()
    error = _clip(redact_text(error, _secrets_of(key)))
    values: dict[str, object] = {"validated_at": now, "validation_error": error}
    if is_valid is not None:
        values["is_valid"] = is_valid
    with transaction.atomic():
        updated = ProviderKey.objects.filter(pk=key.pk, revision=revision).update(**values)
        if not updated:
            logger.info("provider key %s changed or was deleted during validation; result dropped",
                        key.pk)
            return key
        if is_valid and not error:
            # Same transaction: the key is never valid with its runs still paused for it.
            key_validated.send(sender=ProviderKey, key_id=key.pk)
    for name, value in values.items():
        setattr(key, name, value)
    if is_valid is False:
        logger.warning("provider key %s failed validation: %s", key.pk, error)
    else:
        logger.info("provider key %s validation: %s", key.pk, error or "ok")
    return key


# --- input rules -------------------------------------------------------------------------------------

def _secrets_of(key: ProviderKey) -> tuple[str, ...]:
    try:
        return (key_secret(key=key),)
    except InvalidToken:
        return ()


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"


def _clean_limits(*, tier: str, rpm_limit: Any, itpm_limit: Any, otpm_limit: Any) -> dict[str, Any]:
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


def _clean_label(label: str) -> str:
    label = (label or "").strip()
    if not label:
        raise ValidationError({"label": ["A label is required."]})
    if len(label) > 100:
        raise ValidationError({"label": ["A label has at most 100 characters."]})
    return label


def _clean_secret(secret: str) -> str:
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


def _clean_base_url(base_url: str, *, provider: str) -> str:
    try:
        return validate_base_url(base_url, provider=provider)
    except BaseUrlError as exc:
        raise ValidationError({"base_url": [ValidationError(exc.message, code=exc.rule)]}) from None


def _check_label_free(*, owner_id: int, label: str, exclude_pk: int | None = None) -> None:
    taken = ProviderKey.objects.filter(owner_id=owner_id, label=label)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationError({"label": [f"You already have a key labelled {label!r}."]})
