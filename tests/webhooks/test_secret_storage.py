"""The signing secret at rest: under the provider keys' MultiFernet, re-encrypted by rotate_keys, and
the management command that shows it once."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.test import override_settings

from apps.webhooks.models import WebhookSecret
from apps.webhooks.services import webhook_secret_of, webhook_secret_rotate

pytestmark = pytest.mark.django_db

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()


def test_rotate_keys_reencrypts_webhook_secrets_under_the_newest_key(owner, capsys):
    with override_settings(KEY_ENCRYPTION_KEYS=[OLD]):
        _, secret = webhook_secret_rotate(owner=owner)
    with override_settings(KEY_ENCRYPTION_KEYS=[NEW, OLD]):
        call_command("rotate_keys")
    assert "Re-encrypted 1 webhook signing secret(s)" in capsys.readouterr().out
    with override_settings(KEY_ENCRYPTION_KEYS=[NEW]):  # the old key is gone now
        assert webhook_secret_of(owner_id=owner.pk) == secret


def test_the_command_prints_a_new_secret_once_then_only_its_suffix(owner, capsys):
    call_command("webhook_secret", "--user", owner.username, "--rotate")
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("whsec_")
    assert webhook_secret_of(owner_id=owner.pk) == secret
    call_command("webhook_secret", "--user", owner.username)
    shown = capsys.readouterr().out
    assert f"whsec_…{secret[-4:]}" in shown and secret not in shown


def test_the_command_says_when_a_user_has_no_secret(owner, capsys):
    call_command("webhook_secret", "--user", owner.username)
    assert "has no webhook secret" in capsys.readouterr().out
    assert not WebhookSecret.objects.exists()


def test_a_failing_receiver_of_run_finished_never_breaks_the_run_that_ended(
        hooked_run, end_run_plain, monkeypatch, caplog):
    from apps.runs.models import RunStatus
    from apps.webhooks import services

    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "delivery_record", broken)
    end_run_plain(hooked_run)
    hooked_run.refresh_from_db()
    assert hooked_run.status == RunStatus.CANCELED
    assert "the sweep will record it" in caplog.text
