"""Validation under the call-time rules: a base_url that redirects, or whose name resolves to a private
address by the time the call is made, is recorded as the key's problem and reaches nothing; a page that
is not a provider error is never copied into the key."""

import pytest

from apps.core import addresses
from apps.keys.services import KeyValidationInconclusive, key_validate
from apps.runs.models import PausedCause, Run, RunStatus
from tests.fake_servers import (
    INTERNAL_PAGE,
    RebindingResolver,
    html_error,
    internal_service_answer,
    redirect_to,
    serving,
)
from tests.keys.conftest import GOOD_SECRET

pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def internal_service():
    with serving(internal_service_answer) as server:
        yield server


@pytest.fixture
def redirector(internal_service):
    with serving(redirect_to(internal_service.base_url)) as server:
        yield server


def test_a_key_whose_base_url_redirects_is_recorded_invalid_with_that_reason(owner, make_key, redirector):
    key = make_key(owner, base_url=redirector.base_url)
    key_validate(key=key)
    key.refresh_from_db()
    assert key.is_valid is False
    assert key.validation_error.startswith("base_url_redirect: the base_url redirects (HTTP 307)")


def test_validating_a_redirecting_key_sends_nothing_where_the_redirect_points(
        owner, make_key, redirector, internal_service):
    key_validate(key=make_key(owner, base_url=redirector.base_url))
    assert internal_service.received == []


def test_validating_a_redirecting_key_keeps_nothing_of_the_redirect_target(owner, make_key, redirector):
    key = make_key(owner, base_url=redirector.base_url)
    key_validate(key=key)
    key.refresh_from_db()
    assert "internal-token-42" not in key.validation_error
    assert "127.0.0.1" not in key.validation_error


def test_a_name_that_turns_private_after_it_was_checked_fails_validation_at_the_connection(
        owner, make_key, monkeypatch, settings):
    settings.PROVIDER_HOST_ALLOWLIST = []
    # Public when the key is saved and when validation checks the URL; loopback when it connects.
    resolver = RebindingResolver(public_answers=2)
    monkeypatch.setattr(addresses, "_resolve", resolver)
    key = make_key(owner, base_url="https://gateway.example.test")
    key_validate(key=key)
    key.refresh_from_db()
    assert len(resolver.lookups) == 3
    assert key.is_valid is False
    assert key.validation_error.startswith("base_url_not_public: at call time:")


def test_an_error_page_that_is_not_a_provider_error_is_described_not_copied(owner, make_key):
    with serving(html_error(401)) as server:
        key = make_key(owner, base_url=server.base_url)
        key_validate(key=key)
    key.refresh_from_db()
    assert key.is_valid is False
    assert key.validation_error == (
        "http_401: HTTP 401 with a body that is not a provider error "
        f"(content-type text/html, {len(INTERNAL_PAGE)} bytes)"
    )


def test_an_inconclusive_answer_that_is_not_a_provider_error_is_described_not_copied(owner, make_key):
    with serving(html_error(503)) as server:
        key = make_key(owner, base_url=server.base_url)
        with pytest.raises(KeyValidationInconclusive) as raised:
            key_validate(key=key)
    key.refresh_from_db()
    assert "hunter2" not in key.validation_error + str(raised.value)


def test_a_provider_error_still_reaches_the_key_word_for_word(owner, make_key, mock_provider):
    key = make_key(owner, secret=GOOD_SECRET[:-4] + "XXXX", base_url=mock_provider.base_url)
    key_validate(key=key)
    key.refresh_from_db()
    assert key.validation_error == "authentication_error: invalid x-api-key"


def test_a_run_paused_for_an_unsafe_base_url_resumes_once_the_key_validates(owner, make_key, mock_provider):
    key = make_key(owner, base_url=mock_provider.base_url)
    run = Run.objects.create(owner=owner, key=key, model="claude-haiku-4-5", pipeline_version="1",
                             prompt_version="x", status=RunStatus.PAUSED,
                             paused_cause=PausedCause.KEY_UNSAFE,
                             paused_reason="provider refused the key: base_url_redirect: ...")
    key_validate(key=key)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
