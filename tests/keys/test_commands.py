"""Operator commands: add_key reads the secret from stdin, never argv."""

import io
import sys

import pytest
from django.core.management import CommandError, call_command

from apps.keys.models import ProviderKey
from apps.keys.services import key_secret
from tests.keys.conftest import GOOD_SECRET


def test_add_key_reads_the_secret_from_stdin(owner, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(GOOD_SECRET + "\n"))
    call_command("add_key", "--user", "owner", "--label", "Ops", stdout=io.StringIO())
    key = ProviderKey.objects.get(owner=owner)
    assert (key.label, key_secret(key=key)) == ("Ops", GOOD_SECRET)


def test_add_key_reports_the_suffix_and_never_the_secret(owner, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(GOOD_SECRET))
    out = io.StringIO()
    call_command("add_key", "--user", "owner", "--label", "Ops", stdout=out)
    assert GOOD_SECRET[-4:] in out.getvalue()
    assert GOOD_SECRET not in out.getvalue()


def test_add_key_has_no_secret_argument():
    with pytest.raises(CommandError):
        call_command("add_key", "--user", "owner", "--label", "Ops", "--secret", GOOD_SECRET)


def test_add_key_refuses_an_empty_stdin(owner, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="No secret"):
        call_command("add_key", "--user", "owner", "--label", "Ops")
    assert not ProviderKey.objects.exists()


def test_add_key_applies_the_base_url_rules(owner, monkeypatch, settings):
    settings.PROVIDER_HOST_ALLOWLIST = []
    monkeypatch.setattr(sys, "stdin", io.StringIO(GOOD_SECRET))
    with pytest.raises(CommandError, match="base_url"):
        call_command("add_key", "--user", "owner", "--label", "Ops", "--base-url", "https://127.0.0.1")


def test_add_key_refuses_an_unknown_user(db, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(GOOD_SECRET))
    with pytest.raises(CommandError, match="No user"):
        call_command("add_key", "--user", "nobody", "--label", "Ops")
