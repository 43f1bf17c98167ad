"""Where a key may send its secret: the provider-aware rules of `ProviderKey.base_url`, on top of the
address rules every outbound URL obeys (apps/core/addresses.py): no query or fragment, and the
provider's official URL when none is given.

The rules are checked when the URL is saved and before each validation call, and again on every
connection a worker or the web process opens for a key (apps/providers/transport.py).
"""

from dataclasses import dataclass
from urllib.parse import SplitResult

from apps.core.addresses import BaseUrlError, outbound_url_parts, public_addresses
from apps.keys.models import Provider


@dataclass(frozen=True)
class ProviderRules:
    official_base_url: str


PROVIDER_RULES: dict[str, ProviderRules] = {
    Provider.ANTHROPIC: ProviderRules(official_base_url="https://api.anthropic.com"),
}


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


def _rules(provider: str) -> ProviderRules:
    try:
        return PROVIDER_RULES[provider]
    except KeyError:
        raise BaseUrlError("provider", f"Unknown provider {provider!r}.") from None


def _normalise(parts: SplitResult) -> str:
    # The SDK appends "/v1/..." to the base URL: a trailing slash would only double it.
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
