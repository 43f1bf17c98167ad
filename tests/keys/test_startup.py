"""Encryption keys as a new user meets them: zero configuration works and says so once; an empty
KEY_ENCRYPTION_KEYS is one clear message with the command that generates a key, never a traceback."""

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from apps.core import crypto
from apps.keys.checks import encryption_keys_check


@pytest.fixture(autouse=True)
def fresh_process() -> Iterator[None]:
    """As in a new process: no MultiFernet built yet, so nothing announced yet."""
    crypto._fernet.cache_clear()
    yield
    crypto._fernet.cache_clear()


def test_the_development_key_is_announced_once_per_process_when_first_used(caplog):
    caplog.set_level(logging.WARNING)
    with override_settings(KEY_ENCRYPTION_KEYS=[settings.DEV_ENCRYPTION_KEY]):
        crypto.encrypt_secret("first")
        crypto.decrypt_secret(crypto.encrypt_secret("second"))
    assert caplog.text.count("development key") == 1
    assert settings.DEV_ENCRYPTION_KEY not in caplog.text


@pytest.mark.django_db
def test_a_command_that_touches_no_secret_does_not_announce_the_development_key(caplog):
    caplog.set_level(logging.WARNING)
    call_command("runs", "list", stdout=io.StringIO())
    assert "development key" not in caplog.text


def test_real_encryption_keys_are_not_warned_about(caplog):
    caplog.set_level(logging.WARNING)
    with override_settings(KEY_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        crypto.encrypt_secret("secret")
    assert caplog.text == ""


def test_empty_encryption_keys_fail_the_system_check_with_the_command_that_generates_one():
    with override_settings(KEY_ENCRYPTION_KEYS=[]):
        [error] = encryption_keys_check()
    assert error.id == "keys.E001"
    assert "uv run python manage.py generate_encryption_key" in error.hint


def test_encrypting_with_empty_keys_says_what_to_do_rather_than_failing_in_multifernet():
    with override_settings(KEY_ENCRYPTION_KEYS=[""]), pytest.raises(crypto.EncryptionKeysMissing) as raised:
        crypto.encrypt_secret("secret")
    assert "generate one with: uv run python manage.py generate_encryption_key" in str(raised.value)


def test_generate_encryption_key_prints_a_usable_fernet_key():
    out = io.StringIO()
    call_command("generate_encryption_key", stdout=out, stderr=io.StringIO())
    key = out.getvalue().strip()
    assert Fernet(key).decrypt(Fernet(key).encrypt(b"x")) == b"x"


def test_add_key_with_the_example_envs_empty_keys_is_a_clear_message_not_a_traceback():
    env = {**os.environ, "KEY_ENCRYPTION_KEYS": "", "DJANGO_SETTINGS_MODULE": "config.settings.local",
           "DJANGO_READ_DOT_ENV_FILE": "false"}
    done = subprocess.run([sys.executable, "manage.py", "add_key", "--user", "alice", "--label", "main"],
                          cwd=settings.BASE_DIR, env=env, input="sk-ant-mock-test\n", text=True,
                          capture_output=True, timeout=60)
    assert done.returncode != 0
    assert "keys.E001" in done.stderr and "generate_encryption_key" in done.stderr
    assert "Traceback" not in done.stderr
