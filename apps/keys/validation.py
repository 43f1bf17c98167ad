"""Where a key may send its secret: provider-aware rules for `ProviderKey.base_url`.

A base_url is where the worker sends the user's secret on every call, so a careless one is a way to
exfiltrate it or to make our servers call into our own network (SSRF). The rules, each with its own
error: https only; no credentials, query or fragment; and the host must be public, by literal IP and by
every address it resolves to. Hosts in settings.PROVIDER_HOST_ALLOWLIST skip the address rules and may
use http: that is how a key points at the local mock provider.

The rules are checked when the URL is saved and before each validation call, and again on every
connection a worker or the web process opens for a key: apps/providers/transport.py resolves the host
once, checks each address with `public_addresses` and connects to the checked address, so a name whose
DNS changes after it was saved (DNS rebinding) gets no call (see docs/keys.md).
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from apps.keys.models import Provider

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# NAT64's well-known prefix carries an IPv4 address in its last 32 bits (RFC 6052).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class ProviderRules:
    official_base_url: str


PROVIDER_RULES: dict[str, ProviderRules] = {
    Provider.ANTHROPIC: ProviderRules(official_base_url="https://api.anthropic.com"),
}


class BaseUrlError(ValidationError):
    """A base_url broke a rule; `rule` names which one (for tests and for API clients)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message, code=rule)
        self.rule = rule


def official_base_url(provider: str) -> str:
    return _rules(provider).official_base_url


def effective_base_url(*, provider: str, base_url: str) -> str:
    """What a client should use: the stored URL, or the provider's official one when it is empty."""
    return base_url or official_base_url(provider)


def validate_base_url(base_url: str, *, provider: str = Provider.ANTHROPIC) -> str:
    """Return the URL to store ("" for the official URL) or raise BaseUrlError naming the rule."""
    _rules(provider)
    url = (base_url or "").strip()
    if not url:
        return ""
    parts, host, port, allowlisted = outbound_url_parts(url, field="base_url")
    # Checked on the raw text: urlsplit reports an empty query for a bare "?".
    if "?" in url:
        raise BaseUrlError("query", "base_url must not contain a query string ('?...').")
    if "#" in url:
        raise BaseUrlError("fragment", "base_url must not contain a fragment ('#...').")
    if not allowlisted:
        public_addresses(host, port or (443 if parts.scheme == "https" else 80))
    return _normalise(parts)


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


def _rules(provider: str) -> ProviderRules:
    try:
        return PROVIDER_RULES[provider]
    except KeyError:
        raise BaseUrlError("provider", f"Unknown provider {provider!r}.") from None


def _allowlist() -> set[str]:
    return {h.strip().strip("[]").rstrip(".").lower() for h in settings.PROVIDER_HOST_ALLOWLIST if h.strip()}


def is_allowlisted(host: str) -> bool:
    """Whether `host` (a URL's host name or IP literal, as written) is in PROVIDER_HOST_ALLOWLIST."""
    return host.strip("[]").rstrip(".").lower() in _allowlist()


def _normalise(parts: SplitResult) -> str:
    # The SDK appends "/v1/..." to the base URL: a trailing slash would only double it.
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


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
