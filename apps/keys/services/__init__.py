"""Every write to provider keys: the API, the admin, the management commands and the run engine all call
these functions, so the rules (encryption, base_url checks, revalidation, delete guard) live once. By
concern: changes.py (create, update, delete), secrets.py (the plaintext for a call, rotation),
validation.py (the check against the provider, a key refused during a run), rules.py (input rules).

Secrets enter through `key_create` / `key_update` and leave only through `key_secret`; nothing here puts
a secret into an exception, a log line or a stored error message.
"""

from apps.keys.services.changes import (
    LIMIT_FIELDS,
    SECRET_FOR_NEW_BASE_URL,
    KeyInUse,
    key_create,
    key_delete,
    key_set_limits,
    key_update,
)
from apps.keys.services.secrets import key_secret, keys_reencrypt
from apps.keys.services.validation import (
    VALIDATE_KEY_TASK,
    VALIDATION_TIMEOUT_SECONDS,
    KeyValidationInconclusive,
    key_mark_invalid,
    key_schedule_validation,
    key_validate,
)

__all__ = [
    "LIMIT_FIELDS",
    "SECRET_FOR_NEW_BASE_URL",
    "VALIDATE_KEY_TASK",
    "VALIDATION_TIMEOUT_SECONDS",
    "KeyInUse",
    "KeyValidationInconclusive",
    "key_create",
    "key_delete",
    "key_mark_invalid",
    "key_schedule_validation",
    "key_secret",
    "key_set_limits",
    "key_update",
    "key_validate",
    "keys_reencrypt",
]
