"""Where a key may send its secret: each rule rejects what it must, the allowlisted mock is accepted."""

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from apps.core import addresses
from apps.core.addresses import BaseUrlError
from apps.keys.base_url import effective_base_url, validate_base_url
from apps.keys.services import key_create
from tests.keys.conftest import GOOD_SECRET


@pytest.fixture
def public_dns(monkeypatch):
    """Names resolve to a public address (no network needed)."""
    monkeypatch.setattr(addresses, "_resolve", lambda host, port: ["93.184.215.14"])


@pytest.fixture
def no_allowlist():
    with override_settings(PROVIDER_HOST_ALLOWLIST=[]):
        yield


REJECTED = [
    # (url, rule, words the message must contain)
    ("http://proxy.example.com", "https", "https"),
    ("ftp://proxy.example.com", "https", "https"),
    ("proxy.example.com/v1", "https", "https"),
    ("https://user:pass@proxy.example.com", "credentials", "credentials"),
    ("https://token@proxy.example.com", "credentials", "credentials"),
    ("https://proxy.example.com/v1?key=abc", "query", "query"),
    ("https://proxy.example.com/v1?", "query", "query"),
    ("https://proxy.example.com/v1#top", "fragment", "fragment"),
    ("https://", "host", "host"),
    ("https://proxy.example.com:99999", "syntax", "valid URL"),
    ("https://proxy.example.com/a b", "characters", "spaces"),
    ("https://10.1.2.3", "public_host", "private"),
    ("https://172.16.0.1:8443/v1", "public_host", "private"),
    ("https://192.168.1.10", "public_host", "private"),
    ("https://127.0.0.1", "public_host", "loopback"),
    ("https://[::1]", "public_host", "loopback"),
    ("https://169.254.169.254", "public_host", "link-local"),
    ("https://[fe80::1]", "public_host", "link-local"),
    ("https://224.0.0.1", "public_host", "multicast"),
    ("https://240.0.0.1", "public_host", "reserved"),
    ("https://0.0.0.0", "public_host", "unspecified"),
    ("https://100.64.0.1", "public_host", "non-global"),
    ("https://[::ffff:10.0.0.1]", "public_host", "private"),
    ("https://[64:ff9b::7f00:1]", "public_host", "loopback"),
]


@pytest.mark.parametrize(("url", "rule", "words"), REJECTED, ids=[r[0] for r in REJECTED])
def test_a_base_url_breaking_a_rule_is_rejected_with_that_rule(url, rule, words, public_dns, no_allowlist):
    with pytest.raises(BaseUrlError) as error:
        validate_base_url(url)
    assert error.value.rule == rule
    assert words in error.value.message


def test_a_name_that_resolves_to_a_private_address_is_rejected(monkeypatch, no_allowlist):
    monkeypatch.setattr(addresses, "_resolve", lambda host, port: ["93.184.215.14", "10.0.0.5"])
    with pytest.raises(BaseUrlError) as error:
        validate_base_url("https://sneaky.example.com")
    assert error.value.rule == "public_host"
    assert "10.0.0.5" in error.value.message


def test_localhost_is_rejected_by_what_it_resolves_to(no_allowlist):
    with pytest.raises(BaseUrlError) as error:
        validate_base_url("https://localhost:8443")
    assert error.value.rule == "public_host"


def test_a_numeric_host_the_resolver_reads_as_loopback_is_rejected(no_allowlist):
    # 2130706433 is 127.0.0.1 written as one number: not an IP literal to `ipaddress`, but the resolver
    # (and so the HTTP client) reads it as loopback.
    with pytest.raises(BaseUrlError) as error:
        validate_base_url("https://2130706433")
    assert error.value.rule == "public_host"


def test_a_host_that_does_not_resolve_is_rejected(monkeypatch, no_allowlist):
    def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    monkeypatch.setattr(addresses, "_resolve", fail)
    with pytest.raises(BaseUrlError) as error:
        validate_base_url("https://nowhere.invalid")
    assert error.value.rule == "resolve"


def test_an_empty_base_url_means_the_official_url():
    assert validate_base_url("") == ""
    assert effective_base_url(provider="anthropic", base_url="") == "https://api.anthropic.com"


def test_a_public_https_url_is_accepted_without_its_trailing_slash(public_dns, no_allowlist):
    assert validate_base_url("https://proxy.example.com/anthropic/") == "https://proxy.example.com/anthropic"


def test_the_allowlisted_mock_is_accepted_over_http(mock_provider):
    assert validate_base_url(mock_provider.base_url) == mock_provider.base_url


def test_an_allowlisted_host_still_may_not_carry_credentials():
    with override_settings(PROVIDER_HOST_ALLOWLIST=["127.0.0.1"]), pytest.raises(BaseUrlError) as error:
        validate_base_url("http://user:pw@127.0.0.1:8080")
    assert error.value.rule == "credentials"


def test_an_unknown_provider_is_rejected():
    with pytest.raises(BaseUrlError) as error:
        validate_base_url("", provider="other")
    assert error.value.rule == "provider"


def test_creating_a_key_with_a_bad_base_url_names_the_field_and_the_rule(owner, no_allowlist):
    with pytest.raises(ValidationError) as error:
        key_create(owner=owner, label="Main", secret=GOOD_SECRET, base_url="https://10.0.0.1")
    assert "private" in error.value.message_dict["base_url"][0]
