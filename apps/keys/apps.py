import logging

from django.apps import AppConfig
from django.conf import settings

logger = logging.getLogger("apps.keys")


def warn_if_development_key() -> bool:
    """Log (once per process start) that secrets are encrypted with the public development key.

    Production settings refuse to start with it; locally it makes a run work with zero configuration,
    and this warning says so. The key itself is never logged."""
    if settings.DEV_ENCRYPTION_KEY in settings.KEY_ENCRYPTION_KEYS:
        logger.warning(
            "KEY_ENCRYPTION_KEYS is not set: provider keys are encrypted with the built-in development "
            "key, which is public. Fine for local use; set KEY_ENCRYPTION_KEYS before storing real keys."
        )
        return True
    return False


class KeysConfig(AppConfig):
    name = "apps.keys"
    label = "keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        warn_if_development_key()
