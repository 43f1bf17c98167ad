"""A key's secret leaves its ciphertext only through `key_secret`, for a provider call; rotation
re-encrypts every stored secret under the newest KEY_ENCRYPTION_KEYS entry."""

from cryptography.fernet import InvalidToken

from apps.core.crypto import RotationResult, decrypt_secret, reencrypt_secret
from apps.keys.models import ProviderKey


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


def secrets_of(key: ProviderKey) -> tuple[str, ...]:
    """The key's secret, to redact from what a call says; none if it cannot be decrypted."""
    try:
        return (key_secret(key=key),)
    except InvalidToken:
        return ()
