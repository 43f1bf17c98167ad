"""One redaction helper for every place a secret could leak: API errors, logs, exception messages,
failure snapshots and diagnostic entries all pass through `redact`.
"""

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[REDACTED]"

# Anthropic-style keys, and the value after anything that announces a credential (a bearer token, an
# `x-api-key: ...` header echoed in an error), for secrets we were not told about.
_SECRET_PATTERNS = [
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.=]{8,}"),
    re.compile(r"""(?i)(x-api-key["']?\s*[:=]\s*["']?)[A-Za-z0-9_\-\.=]{8,}"""),
]
_SECRET_FIELD_NAMES = re.compile(
    r"(?i)^(x-api-key|api[_-]?key|authorization|secret|secret_ciphertext|password|token|auth[_-]?token)$"
)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    if isinstance(secrets, str):
        # A bare string would iterate as characters and redact nothing.
        secrets = (secrets,)
    # Longest first, so that a secret containing another is replaced whole.
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(
            lambda m: (m.group(1) if m.re.groups else "") + REDACTED, text
        )
    return text


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """Return a copy of `value` (str, dict, list, scalars) with secrets replaced by [REDACTED]."""
    secrets = (secrets,) if isinstance(secrets, str) else tuple(secrets)
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and _SECRET_FIELD_NAMES.match(k) else redact(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    return value
