"""The HTTP layer under every provider client: a key's secret goes only where its base_url rules allow,
checked on the connection itself.

The SDK's HTTP client (httpx2 over httpcore2) resolves a host name when it opens a connection, so a
check made earlier (when the key was saved, or just before validation) says nothing about the address a
call reaches: a name can resolve to a public address then and to 127.0.0.1 a second later (DNS
rebinding). Here the connection pool's network backend does the resolving instead: it asks once, checks
every address with the base_url rules (`apps.core.addresses.public_addresses`, which also honours
PROVIDER_HOST_ALLOWLIST) and connects to a checked address. TLS still verifies the certificate of the
original name (httpcore sends the URL's host as SNI) and the Host header is the URL's, so a gateway
behind a name works as before.

Redirects are never followed: the clients are built with `follow_redirects=False`, and the transports
refuse any 3xx answer, so a base_url cannot bounce the secret, the request body or our headers to
another address, whatever a caller asks of the client.

Both refusals raise `ProviderFailure(FailureKind.KEY_UNSAFE, ...)`; the SDK wraps an exception from its
transport in `APIConnectionError`, and `apps.providers.errors.classify` unwraps it again.
"""

import functools
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore2
import httpx2

from apps.core.addresses import BaseUrlError, is_allowlisted, public_addresses
from apps.providers.errors import FailureKind, ProviderFailure, redirect_refused

# (level, option, value), as socket.setsockopt takes them.
SocketOption = tuple[Any, ...]

def _not_public(exc: BaseUrlError) -> ProviderFailure:
    return ProviderFailure(FailureKind.KEY_UNSAFE, "base_url_not_public", f"at call time: {exc.message}")


def _addresses_to_try(host: str, port: int) -> list[str]:
    """What to connect to for `host`: the host itself when it is allowlisted, else the checked
    addresses it resolves to now. A name that does not resolve is a connection error (retryable:
    DNS fails for a moment); a non-public address is the key's problem."""
    if is_allowlisted(host):
        return [host]
    try:
        return public_addresses(host, port)
    except BaseUrlError as exc:
        if exc.rule == "resolve":
            raise httpcore2.ConnectError(exc.message) from None
        raise _not_public(exc) from None


def _socket_options() -> list[SocketOption]:
    """TCP keepalive, as the SDK's own default client sets it: a provider call can sit idle for
    minutes while the model works, and a NAT or load balancer must not drop it meanwhile."""
    options: list[SocketOption] = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)]
    for name, value in (("TCP_KEEPINTVL", 60), ("TCP_KEEPCNT", 5), ("TCP_KEEPIDLE", 60)):
        option = getattr(socket, name, None)
        if option is not None:
            options.append((socket.IPPROTO_TCP, option, value))
    return options


class GuardedBackend(httpcore2.NetworkBackend):
    """A sync network backend that connects only to checked addresses."""

    def __init__(self, inner: httpcore2.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore2.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[SocketOption] | None = None) -> httpcore2.NetworkStream:
        options = list(socket_options or ())
        last: Exception | None = None
        for address in _addresses_to_try(host, port):
            try:
                return self._inner.connect_tcp(address, port, timeout=timeout,
                                               local_address=local_address, socket_options=options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last = exc
        assert last is not None  # _addresses_to_try never returns an empty list
        raise last

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[SocketOption] | None = None
                            ) -> httpcore2.NetworkStream:
        raise httpcore2.ConnectError("provider calls never use unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class AsyncGuardedBackend(httpcore2.AsyncNetworkBackend):
    """The asyncio (anyio) twin of GuardedBackend. The system resolver blocks, so it runs in a
    worker thread, within the connect timeout."""

    def __init__(self, inner: httpcore2.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore2.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[SocketOption] | None = None
                          ) -> httpcore2.AsyncNetworkStream:
        options = list(socket_options or ())
        try:
            with anyio.fail_after(timeout):
                addresses = await anyio.to_thread.run_sync(_addresses_to_try, host, port)
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"resolving {host!r} timed out") from None
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout,
                                                     local_address=local_address,
                                                     socket_options=options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[SocketOption] | None = None
                                  ) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("provider calls never use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for every pool in the process: building one loads the CA bundle
    (~60 ms of CPU), which a serving loop creating its clients would otherwise pay per pool, stalling
    every call in flight meanwhile. An SSLContext is safe to share between connections and threads."""
    return httpx2.create_ssl_context()


def _pool_options(limits: httpx2.Limits) -> dict[str, Any]:
    return {
        "ssl_context": shared_ssl_context(),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
        "http1": True,
        "http2": False,
        "retries": 0,
        "socket_options": _socket_options(),
    }


class GuardedTransport(httpx2.HTTPTransport):
    """httpx2's own transport (its request and response mapping), over a pool that connects through
    GuardedBackend, refusing redirects. No proxy: HTTPS_PROXY and friends are not used for provider
    calls, since the address rules could only check the proxy, not where it connects."""

    def __init__(self, *, limits: httpx2.Limits, backend: httpcore2.NetworkBackend | None = None
                 ) -> None:  # no super().__init__(): it would build the pool this one replaces
        self._pool = httpcore2.ConnectionPool(
            network_backend=backend or GuardedBackend(), **_pool_options(limits)
        )

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = super().handle_request(request)
        if 300 <= response.status_code < 400:
            response.close()
            raise redirect_refused(response.status_code)
        return response


class AsyncGuardedTransport(httpx2.AsyncHTTPTransport):
    """The async twin of GuardedTransport."""

    def __init__(self, *, limits: httpx2.Limits,
                 backend: httpcore2.AsyncNetworkBackend | None = None) -> None:
        self._pool = httpcore2.AsyncConnectionPool(
            network_backend=backend or AsyncGuardedBackend(), **_pool_options(limits)
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(request)
        if 300 <= response.status_code < 400:
            await response.aclose()
            raise redirect_refused(response.status_code)
        return response


def guarded_http_client(*, timeout: float, max_connections: int = 1000) -> httpx2.Client:
    return httpx2.Client(
        transport=GuardedTransport(limits=_limits(max_connections)),
        follow_redirects=False, trust_env=False, timeout=timeout,
    )


def guarded_async_http_client(*, timeout: float, max_connections: int = 1000,
                              max_keepalive: int | None = None) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=AsyncGuardedTransport(limits=_limits(max_connections, max_keepalive)),
        follow_redirects=False, trust_env=False, timeout=timeout,
    )


def _limits(max_connections: int, max_keepalive: int | None = None) -> httpx2.Limits:
    # The SDK's defaults: many connections for many calls in flight, a bounded idle pool. A pool
    # sized for its calls (max_keepalive given) keeps as many idle as it may hold, so a connection
    # is not closed after each call and opened again (a TLS handshake) for the next.
    keepalive = min(100, max_connections) if max_keepalive is None else min(max_keepalive, max_connections)
    return httpx2.Limits(max_connections=max_connections, max_keepalive_connections=keepalive)
