"""The README's first-hour commands work as written: each test takes its command or its values from the
README itself, so the page and the behaviour cannot drift apart."""

import io
import re
import shlex
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

from apps.keys.base_url import validate_base_url

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


@pytest.mark.django_db
def test_the_readmes_createsuperuser_needs_no_terminal(monkeypatch):
    found = re.search(r"DJANGO_SUPERUSER_PASSWORD='([^']+)' uv run python manage\.py (createsuperuser) \\\n"
                      r"\s+(.+)\n", README)
    assert found, "the README's createsuperuser command"
    password, command, arguments = found.groups()
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", password)
    call_command(command, *shlex.split(arguments), stdout=io.StringIO())
    assert get_user_model().objects.get(username="alice").check_password(password)


def readme_settings_without_a_proxy() -> dict[str, str]:
    paragraph = README[README.index("To try it **without a TLS proxy**"):]
    paragraph = paragraph[:paragraph.index("\n\n")]
    return dict(pair.split("=", 1) for pair in re.findall(r"`([A-Z_]+=[^`]+)`", paragraph))


def test_the_readme_names_every_setting_a_stack_without_a_proxy_needs():
    assert set(readme_settings_without_a_proxy()) == {
        "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE"}


def test_the_readmes_compose_mock_setting_lets_a_key_point_at_the_mock_service():
    """`PROVIDER_HOST_ALLOWLIST=mock` and `--base-url http://mock:8765`, as the compose section says:
    accepted without resolving the name (only compose's network knows it)."""
    compose = README[README.index("### With docker compose"):]
    allowlist = re.search(r"`PROVIDER_HOST_ALLOWLIST=(\w+)`", compose)
    base_url = re.search(r"--base-url (http://mock:\d+)", README).group(1)
    with override_settings(PROVIDER_HOST_ALLOWLIST=[allowlist.group(1)]):
        assert validate_base_url(base_url) == base_url
