"""A run whose key's base_url breaks the address rules at call time: the run (and the key's other runs)
pause with the reason, the blocks keep their attempts, and nothing reaches the address."""

import pytest

from apps.core import addresses
from apps.failures.models import PipelineFailure
from apps.keys.services import key_create
from apps.runs.models import PausedCause
from tests.factories import SECRET, make_key, make_run
from tests.fake_servers import (
    INTERNAL_PAGE,
    RebindingResolver,
    html_error,
    internal_service_answer,
    redirect_to,
    serving,
)
from tests.runs.helpers import serve_until_settled

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("loopback_only")]


@pytest.fixture
def internal_service():
    with serving(internal_service_answer) as server:
        yield server


@pytest.fixture
def redirect_key(owner, internal_service):
    with serving(redirect_to(internal_service.base_url)) as redirector:
        yield make_key(owner, base_url=redirector.base_url)


@pytest.fixture
def rebound_key(owner, monkeypatch, settings):
    """A key saved while its name resolved to a public address; it resolves to loopback from then on."""
    settings.PROVIDER_HOST_ALLOWLIST = []
    monkeypatch.setattr(addresses, "_resolve", RebindingResolver(public_answers=1))
    return key_create(owner=owner, label="gateway", secret=SECRET, base_url="https://gateway.example.test")


def test_a_redirecting_base_url_pauses_the_run_with_the_reason(owner, redirect_key):
    run = serve_until_settled(make_run(owner, redirect_key, ["one", "two"]))
    assert (run.status, run.paused_cause) == ("paused", PausedCause.KEY_UNSAFE)
    assert "base_url_redirect" in run.paused_reason


def test_a_redirecting_base_url_sends_no_call_where_it_points(owner, redirect_key, internal_service):
    serve_until_settled(make_run(owner, redirect_key, ["one", "two"]))
    assert internal_service.received == []


def test_a_redirecting_base_url_costs_the_blocks_no_attempt(owner, redirect_key):
    run = serve_until_settled(make_run(owner, redirect_key, ["one", "two"]))
    blocks = run.blocks.order_by("block_index").values_list("status", "attempts")
    assert list(blocks) == [("pending", 0), ("pending", 0)]
    assert run.failed_blocks == 0


def test_the_keys_other_runs_pause_too(owner, redirect_key):
    other = make_run(owner, redirect_key, ["waiting"])
    serve_until_settled(make_run(owner, redirect_key, ["one"]))
    other.refresh_from_db()
    assert (other.status, other.paused_cause) == ("paused", PausedCause.KEY_UNSAFE)


def test_a_name_that_turned_private_after_it_was_saved_pauses_the_run(owner, rebound_key):
    run = serve_until_settled(make_run(owner, rebound_key, ["one"]))
    assert (run.status, run.paused_cause) == ("paused", PausedCause.KEY_UNSAFE)
    assert "base_url_not_public" in run.paused_reason
    assert run.blocks.get().attempts == 0


def test_an_error_page_that_is_not_a_provider_error_is_stored_as_status_type_and_size(owner):
    with serving(html_error(400)) as server:
        run = serve_until_settled(make_run(owner, make_key(owner, base_url=server.base_url), ["one"]))
    block = run.blocks.get()
    described = f"HTTP 400 with a body that is not a provider error (content-type text/html, " \
                f"{len(INTERNAL_PAGE)} bytes)"
    assert (block.status, block.error_code, block.error_message) == ("failed", "http_400", described)
    assert PipelineFailure.objects.get().error_message == described
