"""Encryption of secrets at rest (provider keys, webhook signing secrets): Fernet tokens under a
MultiFernet of KEY_ENCRYPTION_KEYS.

The first key encrypts; every key decrypts, so keys can be rotated (manage.py rotate_keys) without a
window in which stored secrets are unreadable.

An empty KEY_ENCRYPTION_KEYS (e.g. `.env.example` copied as it is) is refused with a message saying
how to generate a key, by a system check (apps/keys/checks.py) before any command runs, and here for
processes that run no checks (a Celery worker). The built-in development key is announced once per
process, when a secret is first encrypted or decrypted with it, not by every command.
"""

import base64
import hashlib
import logging
from dataclasses import dataclass, field
from functools import cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger("apps.keys")

GENERATE_COMMAND = "uv run python manage.py generate_encryption_key"
MISSING_MESSAGE = (
    "KEY_ENCRYPTION_KEYS is empty, so provider keys cannot be encrypted. Set it (in .env or the "
    f"environment) to a Fernet key; generate one with: {GENERATE_COMMAND}"
)


class EncryptionKeysMissing(ImproperlyConfigured):
    """KEY_ENCRYPTION_KEYS is set but empty."""

    def __init__(self) -> None:
        super().__init__(MISSING_MESSAGE)


def _as_fernet_key(raw: str) -> bytes:
    """Accept a proper Fernet key, or derive one from any other string (never stored)."""
    try:
        if len(base64.urlsafe_b64decode(raw.encode())) == 32:
            return raw.encode()
    except ValueError:
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(raw.encode()).digest())


def uses_development_key(keys: tuple[str, ...] | list[str]) -> bool:
    return settings.DEV_ENCRYPTION_KEY in keys


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise EncryptionKeysMissing
    if uses_development_key(keys):
        # Once per process (this function is cached): not on every command, not into progress bars.
        logger.warning(
            "KEY_ENCRYPTION_KEYS is not set: provider keys are encrypted with the built-in development "
            "key, which is public. Fine for local use; set KEY_ENCRYPTION_KEYS before storing real keys "
            f"(generate one with: {GENERATE_COMMAND})."
        )
    return MultiFernet([Fernet(_as_fernet_key(k)) for k in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(k for k in settings.KEY_ENCRYPTION_KEYS if k))


def encrypt_secret(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt_secret(ciphertext: str) -> str:
    return fernet().decrypt(ciphertext.encode()).decode()


def reencrypt_secret(ciphertext: str) -> str:
    """The same secret under the newest key (MultiFernet.rotate)."""
    return fernet().rotate(ciphertext.encode()).decode()


def generate_key() -> str:
    return Fernet.generate_key().decode()


@dataclass
class RotationResult:
    """What re-encrypting one table of secrets under the newest key did (manage.py rotate_keys)."""

    reencrypted: int = 0
    # Updated by someone else while we rotated: their write already used the newest key.
    changed_meanwhile: int = 0
    # Ciphertexts no configured encryption key can read (a retired key removed too early).
    unreadable: list[int] = field(default_factory=list)
