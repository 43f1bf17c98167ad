"""What production settings refuse, and who a request comes from. Plain functions, so tests can call
them without importing a settings module (settings are configured once per process)."""

import binascii
from base64 import urlsafe_b64decode
from typing import Any

GENERATE_SECRET_KEY = (
    'python -c "from django.core.management.utils import get_random_secret_key; '
    'print(get_random_secret_key())"'
)
GENERATE_FERNET_KEY = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)
# What people leave in place from examples and tutorials.
KNOWN_PLACEHOLDERS = {"change-me", "changeme", "secret", "django-insecure", "your-secret-key"}
MIN_SECRET_KEY_LENGTH = 50


def weak_secret_key_reason(value: str) -> str | None:
    """Why a SECRET_KEY is not fit for production (None if it is). The same bar as Django's own
    deployment check (security.W009): at least 50 characters, at least 5 distinct ones, and not the
    generated development default."""
    if not value:
        return "it is not set"
    if value.strip().lower() in KNOWN_PLACEHOLDERS:
        return f"{value!r} is a placeholder"
    if value.startswith("django-insecure"):
        return "it is the development default (django-insecure-...)"
    if len(value) < MIN_SECRET_KEY_LENGTH:
        return f"it has {len(value)} characters, fewer than {MIN_SECRET_KEY_LENGTH}"
    if len(set(value)) < 5:
        return "it has fewer than 5 distinct characters"
    return None


def bad_encryption_keys(keys: list[str], *, development_key: str) -> str | None:
    """Why KEY_ENCRYPTION_KEYS is not fit for production (None if it is): every entry must be a real
    Fernet key (32 bytes, url-safe base64), and the public development key must not be among them.
    Entries are never quoted back: they are secrets."""
    if not keys:
        return "it is not set"
    for position, key in enumerate(keys, start=1):
        if key == development_key:
            return f"entry {position} is the built-in development key, which is public"
        if not is_fernet_key(key):
            return f"entry {position} is not a Fernet key (32 bytes, url-safe base64)"
    return None


def is_fernet_key(key: str) -> bool:
    try:
        return len(urlsafe_b64decode(key.encode("ascii"))) == 32 and len(key) == 44
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return False


def client_ip(request: Any) -> str:
    """The client's address: REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT reverse proxies the entry of
    X-Forwarded-For that the outermost trusted proxy added (entries further left are the client's
    own say, which anyone can forge). Used by the login lockout and the failed-token counter."""
    from django.conf import settings

    remote = request.META.get("REMOTE_ADDR", "") or ""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
                 if part.strip()]
    if len(forwarded) < proxies:
        return remote
    return forwarded[-proxies]
