"""Where our servers may send a request: the address rules every outbound URL obeys (a key's
base_url, whose provider adds its own rules in apps/keys/base_url.py, and a run's webhook_url).

A base_url is where the worker sends the user's secret on every call, and a webhook_url is where our
servers POST a run's events, so a careless one is a way to exfiltrate a secret or to make our servers
call into our own network (SSRF). The rules, each with its own error: https only; no credentials; and
the host must be public, by literal IP and by every address it resolves to. Hosts in
settings.PROVIDER_HOST_ALLOWLIST skip the address rules and may use http: that is how a key points at
the local mock provider. A webhook_url may carry a path and a query string (receivers often carry a
route or a token in them), never a fragment.

The rules are checked when the URL is saved (a webhook_url: when its run is created), a base_url again
before each validation call, and both again on every connection a worker or the web process opens:
apps/providers/transport.py resolves the host once, checks each address with `public_addresses` and
connects to the checked address, so a name whose DNS changes after it was saved (DNS rebinding) gets
no call (see docs/keys.md). A webhook delivery checks its URL again without DNS before it connects.
"""

import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# NAT64's well-known prefix carries an IPv4 address in its last 32 bits (RFC 6052).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BaseUrlError(ValidationError):
    """A base_url broke a rule; `rule` names which one (for tests and for API clients)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message, code=rule)
        self.rule = rule


def outbound_url_parts(url: str, *, field: str, error: type[BaseUrlError] = BaseUrlError,
                       ) -> tuple[SplitResult, str, int | None, bool]:
    """The rules every URL our servers send to obeys (a key's base_url, a run's webhook_url): no
    spaces or control characters, a valid URL, https (http only for allowlisted hosts), a host, no
    credentials. Returns (parts, host, port, allowlisted); raises `error` naming `field` and the rule."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise error("characters", f"{field} must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise error("syntax", f"{field} is not a valid URL ({exc}).") from None
    if parts.scheme not in ("https", "http"):
        raise error("https", f"{field} must use https, not {parts.scheme or 'no scheme'!r}.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise error("host", f"{field} must include a host name.")
    allowlisted = is_allowlisted(host)
    if parts.scheme == "http" and not allowlisted:
        raise error("https", f"{field} must use https (http is allowed only for hosts in "
                             "PROVIDER_HOST_ALLOWLIST).")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise error("credentials", f"{field} must not contain credentials (user:password@).")
    return parts, host, port, allowlisted


def _allowlist() -> set[str]:
    return {h.strip().strip("[]").rstrip(".").lower() for h in settings.PROVIDER_HOST_ALLOWLIST if h.strip()}


def is_allowlisted(host: str) -> bool:
    """Whether `host` (a URL's host name or IP literal, as written) is in PROVIDER_HOST_ALLOWLIST."""
    return host.strip("[]").rstrip(".").lower() in _allowlist()


def _resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (a seam for tests; the real one asks the system resolver)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    # In the resolver's order (the order to try them in), each once.
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def public_addresses(host: str, port: int) -> list[str]:
    """The addresses to connect to for `host`: the literal IP itself, or every address the name
    resolves to (asked once, here), each of them checked. Raises BaseUrlError ("resolve" when the
    name does not resolve, "public_host" when any address is not public). Callers that connect must
    connect to these addresses, never resolve the name again: that second answer is not checked."""
    host = host.strip("[]").rstrip(".").lower()
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
        resolved = [host]
    else:
        try:
            resolved = _resolve(host, port)
        except (OSError, UnicodeError):
            raise BaseUrlError("resolve", f"base_url host {host!r} does not resolve.") from None
        if not resolved:
            raise BaseUrlError("resolve", f"base_url host {host!r} does not resolve.")
        # A scoped IPv6 result ("fe80::1%eth0") is link-local whatever its scope.
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolved]
    for address in addresses:
        reason = non_public_reason(address)
        if reason:
            via = "" if literal is not None else f" (it resolves to {address})"
            raise BaseUrlError(
                "public_host",
                f"base_url host {host!r} is a {reason} address{via}; only public hosts are allowed "
                "unless the host is in PROVIDER_HOST_ALLOWLIST.",
            )
    return resolved


def non_public_reason(address: IPAddress) -> str | None:
    """Why an address is not a public unicast one (None if it is), looking inside IPv6 forms that
    embed an IPv4 address, since those reach the IPv4 host."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return non_public_reason(embedded)
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-global", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None



# --- a run's webhook_url ---------------------------------------------------------------------------

WEBHOOK_URL_MAX_LENGTH = 2000


class WebhookUrlError(BaseUrlError):
    """A webhook_url broke a rule; `rule` names which one."""


def _error(rule: str, message: str) -> WebhookUrlError:
    return WebhookUrlError(rule, message)


def validate_webhook_url(url: str, *, resolve: bool = True) -> str:
    """The URL to store, or WebhookUrlError naming the rule. `resolve=False` checks everything but
    the host's addresses (the connection checks those)."""
    url = (url or "").strip()
    if not url:
        raise _error("empty", "webhook_url must not be empty.")
    if len(url) > WEBHOOK_URL_MAX_LENGTH:
        raise _error("length", f"webhook_url must be at most {WEBHOOK_URL_MAX_LENGTH} characters.")
    parts, host, port, allowlisted = outbound_url_parts(url, field="webhook_url", error=WebhookUrlError)
    if "#" in url:
        raise _error("fragment", "webhook_url must not contain a fragment ('#...').")
    if resolve and not allowlisted:
        try:
            public_addresses(host, port or (443 if parts.scheme == "https" else 80))
        except BaseUrlError as exc:
            raise _error(exc.rule, exc.message.replace("base_url", "webhook_url")) from None
    return url


def url_host(url: str) -> str:
    """The host of a URL, for logs: never its path or query, which may carry a receiver's token."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"
