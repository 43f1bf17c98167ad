"""Encryption of provider secrets at rest: Fernet tokens under a MultiFernet of KEY_ENCRYPTION_KEYS.

The first key encrypts; every key decrypts, so keys can be rotated (manage.py rotate_keys) without a
window in which stored secrets are unreadable.
"""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


def _as_fernet_key(raw: str) -> bytes:
    """Accept a proper Fernet key, or derive one from any other string (never stored)."""
    try:
        if len(base64.urlsafe_b64decode(raw.encode())) == 32:
            return raw.encode()
    except ValueError:
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(raw.encode()).digest())


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_as_fernet_key(k)) for k in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.KEY_ENCRYPTION_KEYS))


def encrypt_secret(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt_secret(ciphertext: str) -> str:
    return fernet().decrypt(ciphertext.encode()).decode()


def reencrypt_secret(ciphertext: str) -> str:
    """The same secret under the newest key (MultiFernet.rotate)."""
    return fernet().rotate(ciphertext.encode()).decode()
