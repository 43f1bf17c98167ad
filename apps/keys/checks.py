"""System checks: Django runs them before (almost) every management command and runserver, so a
misconfiguration is one clear message instead of a traceback from deep inside a command."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from apps.core.crypto import GENERATE_COMMAND


@register()
def encryption_keys_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    if any(settings.KEY_ENCRYPTION_KEYS):
        return []
    return [Error(
        "KEY_ENCRYPTION_KEYS is empty, so provider keys cannot be encrypted.",
        hint=f"Set it in the environment (or .env.local for manage.py's local settings, .env for "
             f"compose) to a key generated with: {GENERATE_COMMAND}",
        id="keys.E001",
    )]
