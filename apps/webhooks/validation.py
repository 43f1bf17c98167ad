"""Where a run's events may be POSTed: the address rules of a key's base_url (apps/keys/validation.py).

A webhook URL makes our servers send a request wherever a user says, so it is an SSRF vector exactly
like a base_url: https only (http only for hosts in PROVIDER_HOST_ALLOWLIST), no credentials or
fragment, and a public host, by literal IP and by every address it resolves to. A path and a query
string are allowed (receivers often carry a route or a token in them).

Checked when the run is created (with DNS), and again before each delivery without DNS: the delivery's
connection goes through apps/providers/transport.py, which resolves the name once, checks every
address with the same rules and connects only to a checked one (no DNS rebinding, no redirects)."""

from urllib.parse import urlsplit

from apps.keys.validation import BaseUrlError, outbound_url_parts, public_addresses

MAX_URL_LENGTH = 2000
FIELD = "webhook_url"


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
    if len(url) > MAX_URL_LENGTH:
        raise _error("length", f"webhook_url must be at most {MAX_URL_LENGTH} characters.")
    parts, host, port, allowlisted = outbound_url_parts(url, field=FIELD, error=WebhookUrlError)
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
