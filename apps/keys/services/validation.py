"""Validating a key: one cheap real call with it, its verdict recorded on the key (fenced by the key's
`revision`), and a key the provider refused during a run marked invalid. A key that validates again
announces it (apps.keys.signals.key_validated) in the verdict's transaction."""

import logging

import anthropic
from celery import current_app
from django.db import transaction
from django.utils import timezone

from apps.core.addresses import BaseUrlError
from apps.core.logcontext import log_context
from apps.core.redaction import redact_text
from apps.failures.models import EventCode, LogLevel
from apps.failures.services import diagnostic_log
from apps.keys.base_url import effective_base_url, validate_base_url
from apps.keys.models import ProviderKey
from apps.keys.services.secrets import secrets_of
from apps.keys.signals import key_validated
from apps.providers.catalog import catalog
from apps.providers.client import make_client
from apps.providers.errors import FailureKind, classify

logger = logging.getLogger(__name__)

VALIDATE_KEY_TASK = "conveyor.keys.validate_key"
# The validation call is tiny; a slow answer is a problem in itself, and the task has a time limit.
VALIDATION_TIMEOUT_SECONDS = 20.0
MAX_ERROR_LENGTH = 2000


class KeyValidationInconclusive(Exception):
    """The provider could not answer (throttled, overloaded, unreachable): try the validation later.
    The message is already redacted."""


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
    with log_context(key_id=key.pk, secrets=secrets_of(key)):
        return _validate(key)


def _validate(key: ProviderKey) -> ProviderKey:
    revision = key.revision
    secrets = secrets_of(key)
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
                   metadata={"key_id": key.pk, "http_status": http_status}, secrets=secrets_of(key))


@transaction.atomic
def key_mark_invalid(*, key_id: int, error: str, revision: int | None = None) -> bool:
    """Record that the provider rejected the key (401/403 during a run). Returns False if the key is
    gone, or (when `revision` is given) was changed since the failing call was made."""
    key = ProviderKey.objects.filter(pk=key_id).first()
    if key is None:
        return False
    error = _clip(redact_text(error, secrets_of(key)))
    rows = ProviderKey.objects.filter(pk=key_id)
    if revision is not None:
        rows = rows.filter(revision=revision)
    updated = rows.update(is_valid=False, validated_at=timezone.now(), validation_error=error)
    if updated:
        logger.warning("provider key %s marked invalid: %s", key_id, error)
    return bool(updated)


def _record_validation(key: ProviderKey, revision: int, *, is_valid: bool | None,
                       error: str) -> ProviderKey:
    """Write a validation outcome if the key still holds what was tested; on success, announce it
    (key_validated: the runs app resumes the runs the key paused).

    `is_valid=None` records only the error and time (an inconclusive attempt keeps the last verdict).
    """
    now = timezone.now()
    error = _clip(redact_text(error, secrets_of(key)))
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


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"
