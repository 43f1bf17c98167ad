"""Encryption-key rotation: new key first, old keys still read, rotate_keys re-encrypts."""

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import CommandError, call_command
from django.test import override_settings

from apps.keys.models import ProviderKey
from apps.keys.services import key_secret
from tests.keys.conftest import GOOD_SECRET

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()


@pytest.fixture
def key_under_old(owner, make_key) -> ProviderKey:
    with override_settings(KEY_ENCRYPTION_KEYS=[OLD]):
        return make_key(owner)


def test_old_ciphertexts_still_read_while_a_new_key_is_added(key_under_old):
    with override_settings(KEY_ENCRYPTION_KEYS=[NEW, OLD]):
        assert key_secret(key=key_under_old) == GOOD_SECRET


def test_rotate_keys_reencrypts_every_key_under_the_newest_key(key_under_old, owner, make_key):
    with override_settings(KEY_ENCRYPTION_KEYS=[OLD]):
        second = make_key(owner, label="Second")
    with override_settings(KEY_ENCRYPTION_KEYS=[NEW, OLD]):
        call_command("rotate_keys")
    with override_settings(KEY_ENCRYPTION_KEYS=[NEW]):  # the old key is gone now
        for key in (key_under_old, second):
            key.refresh_from_db()
            assert key.secret_ciphertext != ""
            assert key_secret(key=key) == GOOD_SECRET


def test_rotation_changes_the_stored_ciphertext(key_under_old):
    before = key_under_old.secret_ciphertext
    with override_settings(KEY_ENCRYPTION_KEYS=[NEW, OLD]):
        call_command("rotate_keys")
    key_under_old.refresh_from_db()
    assert key_under_old.secret_ciphertext != before
    with override_settings(KEY_ENCRYPTION_KEYS=[OLD]), pytest.raises(InvalidToken):
        key_secret(key=key_under_old)


def test_rotate_keys_fails_loudly_for_a_key_no_configured_key_can_read(key_under_old):
    with override_settings(KEY_ENCRYPTION_KEYS=[NEW]), pytest.raises(CommandError) as error:
        call_command("rotate_keys")
    assert str(key_under_old.pk) in str(error.value)
