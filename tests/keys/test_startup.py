"""Local defaults work with zero configuration and say so in the logs, never printing the key."""

import logging

from cryptography.fernet import Fernet
from django.conf import settings
from django.test import override_settings

from apps.keys.apps import warn_if_development_key


def test_the_development_encryption_key_is_announced_in_the_logs(caplog):
    caplog.set_level(logging.WARNING)
    with override_settings(KEY_ENCRYPTION_KEYS=[settings.DEV_ENCRYPTION_KEY]):
        assert warn_if_development_key()
    assert "development key" in caplog.text
    assert settings.DEV_ENCRYPTION_KEY not in caplog.text


def test_real_encryption_keys_are_not_warned_about(caplog):
    caplog.set_level(logging.WARNING)
    with override_settings(KEY_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        assert not warn_if_development_key()
    assert caplog.text == ""
