"""Celery adapters for key work: ids in, a service call, nothing else."""

from celery import shared_task

from apps.keys.models import ProviderKey
from apps.keys.services import (
    VALIDATE_KEY_TASK,
    VALIDATION_TIMEOUT_SECONDS,
    KeyValidationInconclusive,
    key_validate,
)


# Celery takes time limits in float seconds; celery-types says int.
@shared_task(  # type: ignore[call-overload]
    name=VALIDATE_KEY_TASK,
    # Only "the provider could not say" (429, 529, 5xx, timeouts) is worth another try; a 401 is an
    # answer. Backoff with jitter so a provider outage does not get a burst of validations back.
    autoretry_for=(KeyValidationInconclusive,),
    max_retries=4,
    retry_backoff=10,
    retry_backoff_max=300,
    retry_jitter=True,
    # One call with a 20 s client timeout; the limits only catch a hang outside the client.
    soft_time_limit=VALIDATION_TIMEOUT_SECONDS + 20,
    time_limit=VALIDATION_TIMEOUT_SECONDS + 40,
)
def validate_key(key_id: int) -> None:
    # Safe to run twice (a second validation records the same verdict); a deleted key is not an error.
    key = ProviderKey.objects.filter(pk=key_id).first()
    if key is None:
        return
    key_validate(key=key)
