"""What the audit trail records of a provider key: never its secret or ciphertext, only its suffix
(a rotation shows as a new suffix and revision)."""

from typing import Any

from apps.keys.models import ProviderKey

KEY_FIELDS = (
    "label",
    "provider",
    "base_url",
    "suffix",
    "tier",
    "rpm_limit",
    "itpm_limit",
    "otpm_limit",
    "revision",
)


def key_fields(key: ProviderKey) -> dict[str, Any]:
    return {"owner_id": key.owner_id, **{name: getattr(key, name) for name in KEY_FIELDS}}
