"""The HTTP layer under every provider client (apps/providers/transport.py): no redirect is followed,
and each connection goes only to an address the base_url rules allow, checked when it is opened."""

import anthropic
import httpcore2
import httpx2
import pytest

from apps.core import addresses
from apps.providers.client import make_async_client, make_client
from apps.providers.errors import FailureKind, ProviderFailure, classify
from apps.providers.transport import GuardedBackend, GuardedTransport
from tests.fake_servers import RebindingResolver, internal_service_answer, redirect_to, serving

pytestmark = pytest.mark.usefixtures("loopback_only")

SECRET = "sk-ant-fake.Transport7Hq2Lw9Xv4Rb8Nc1Jd6Kf3M"
PING = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "ping"}]}


@pytest.fixture
def internal_service():
    with serving(internal_service_answer) as server:
        yield server


@pytest.fixture
def redirector(internal_service):
    with serving(redirect_to(internal_service.base_url)) as server:
        yield server


def failure_of(call) -> ProviderFailure:
    with pytest.raises(anthropic.APIError) as caught:
        call()
    return classify(caught.value)


def test_a_redirect_is_a_key_unsafe_failure(redirector):
    with make_client(api_key=SECRET, base_url=redirector.base_url) as client:
        failure = failure_of(lambda: client.messages.count_tokens(**PING))
    assert (failure.kind, failure.code, failure.http_status) == (
        FailureKind.KEY_UNSAFE, "base_url_redirect", 307)


def test_a_redirect_sends_nothing_to_where_it_points(redirector, internal_service):
    with make_client(api_key=SECRET, base_url=redirector.base_url) as client:
        failure_of(lambda: client.messages.count_tokens(**PING))
    assert internal_service.received == []


@pytest.mark.parametrize("status", [301, 302, 303, 308])
def test_every_redirect_status_is_refused(internal_service, status):
    with serving(redirect_to(internal_service.base_url, status)) as redirector, \
            make_client(api_key=SECRET, base_url=redirector.base_url) as client:
        failure = failure_of(lambda: client.messages.count_tokens(**PING))
    assert (failure.code, internal_service.received) == ("base_url_redirect", [])


def test_the_async_client_refuses_redirects_too(redirector, internal_service):
    import asyncio

    async def call() -> None:
        async with make_async_client(api_key=SECRET, base_url=redirector.base_url) as client:
            await client.messages.create(max_tokens=5, **PING)

    failure = failure_of(lambda: asyncio.run(call()))
    assert (failure.code, internal_service.received) == ("base_url_redirect", [])


def test_a_name_that_resolves_to_a_private_address_at_call_time_gets_no_connection(
        monkeypatch, settings):
    settings.PROVIDER_HOST_ALLOWLIST = []
    monkeypatch.setattr(addresses, "_resolve", RebindingResolver(public_answers=0))
    with make_client(api_key=SECRET, base_url="https://gateway.example.test") as client:
        failure = failure_of(lambda: client.messages.count_tokens(**PING))
    assert (failure.kind, failure.code) == (FailureKind.KEY_UNSAFE, "base_url_not_public")
    assert "loopback" in failure.message


def test_an_allowlisted_host_is_reached_as_before(internal_service):
    # settings.test allows 127.0.0.1: the local mock provider's case.
    with make_client(api_key=SECRET, base_url=internal_service.base_url) as client:
        client.messages.count_tokens(**PING)
    assert len(internal_service.received) == 1


def test_a_name_that_does_not_resolve_is_a_retryable_connection_error(monkeypatch, settings):
    settings.PROVIDER_HOST_ALLOWLIST = []

    def fail(host: str, port: int) -> list[str]:
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(addresses, "_resolve", fail)
    with make_client(api_key=SECRET, base_url="https://gateway.example.test") as client:
        failure = failure_of(lambda: client.messages.count_tokens(**PING))
    assert (failure.kind, failure.code) == (FailureKind.RETRYABLE, "connection_error")


# --- where the connection goes: a recording network backend, no sockets at all ------------------------

class RecordingStream(httpcore2.MockStream):
    """Answers one canned HTTP response; remembers what was written and the TLS server name."""

    def __init__(self, answer: list[bytes]) -> None:
        super().__init__(answer)
        self.written = b""
        self.server_hostname: str | None = None

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.written += buffer

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):  # type: ignore[override]
        self.server_hostname = server_hostname
        return self


class RecordingBackend(httpcore2.NetworkBackend):
    def __init__(self) -> None:
        self.connected_to: list[tuple[str, int]] = []
        self.stream = RecordingStream([b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"])

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.connected_to.append((host, port))
        return self.stream


@pytest.fixture
def recorded(monkeypatch, settings):
    """A client over the guarded transport whose sockets are recorded, for a name that resolves (once
    per connection, through the seam) to a public address."""
    settings.PROVIDER_HOST_ALLOWLIST = []
    resolver = RebindingResolver(public_answers=100)
    monkeypatch.setattr(addresses, "_resolve", resolver)
    inner = RecordingBackend()
    transport = GuardedTransport(limits=httpx2.Limits(max_connections=1),
                                 backend=GuardedBackend(inner=inner))
    with httpx2.Client(transport=transport) as client:
        client.post("https://gateway.example.test/v1/messages", json={})
    return inner, resolver


def test_the_connection_goes_to_the_checked_address_not_the_name(recorded):
    inner, _ = recorded
    assert inner.connected_to == [(RebindingResolver.PUBLIC, 443)]


def test_the_name_is_resolved_once_per_connection(recorded):
    _, resolver = recorded
    assert resolver.lookups == ["gateway.example.test"]


def test_tls_is_verified_for_the_original_name(recorded):
    inner, _ = recorded
    assert inner.stream.server_hostname == "gateway.example.test"


def test_the_host_header_keeps_the_original_name(recorded):
    inner, _ = recorded
    assert b"\r\nHost: gateway.example.test\r\n" in inner.stream.written


def test_proxy_variables_in_the_environment_are_not_used(internal_service, monkeypatch):
    # A proxy would make the address rules check the proxy, not where it connects.
    with serving(internal_service_answer) as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.base_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with make_client(api_key=SECRET, base_url=internal_service.base_url) as client:
            client.messages.count_tokens(**PING)
    assert (len(proxy.received), len(internal_service.received)) == (0, 1)


def test_clients_emit_no_sdk_spans_unless_provider_traces_is_on(settings):
    assert make_async_client(api_key="k").open_telemetry["traces"]["enabled"] is False
    assert make_client(api_key="k").open_telemetry["propagation"] is False
    settings.CONVEYOR = {**settings.CONVEYOR, "PROVIDER_TRACES": True}
    assert make_async_client(api_key="k").open_telemetry["traces"]["enabled"] is True
