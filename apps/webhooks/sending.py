"""One POST of a signed event, through the provider calls' guarded HTTP layer
(apps/providers/transport.py): the host is resolved once, every address is checked with the base_url
rules and only a checked address is connected to; a redirect is never followed (a 3xx is a failed
delivery). What is kept of the answer is its status, content type and size: never its body, which is
whatever the receiver (or whoever answers at that address) chose to say."""

from dataclasses import dataclass

import httpx2

from apps.core.addresses import WebhookUrlError, validate_webhook_url
from apps.providers.errors import ProviderFailure
from apps.providers.transport import guarded_http_client

USER_AGENT = "Conveyor-Webhooks/1"
DETAIL_CHARS = 300


@dataclass(frozen=True)
class SendOutcome:
    delivered: bool
    status_code: int | None = None
    # A class, for the log and the API: http_<status>, redirect, timeout, connect_error, ...
    error: str = ""
    detail: str = ""


def _failed(error: str, detail: str, status_code: int | None = None) -> SendOutcome:
    return SendOutcome(False, status_code=status_code, error=error, detail=detail[:DETAIL_CHARS])


def post_event(*, url: str, body: str, headers: dict[str, str], timeout: float) -> SendOutcome:
    try:
        validate_webhook_url(url, resolve=False)
    except WebhookUrlError as exc:
        return _failed("url_not_allowed", f"at call time: {exc.message}")
    request_headers = {"content-type": "application/json", "user-agent": USER_AGENT, **headers}
    try:
        with guarded_http_client(timeout=timeout, max_connections=1) as client, \
                client.stream("POST", url, content=body.encode(), headers=request_headers) as response:
            # The body is never read: status, type and announced size are all that is kept.
            status = response.status_code
            if 200 <= status < 300:
                return SendOutcome(True, status_code=status)
            content_type = response.headers.get("content-type", "none").split(";")[0].strip() or "none"
            size = response.headers.get("content-length")
            size_text = f"{size} bytes" if size and size.isdigit() else "size not announced"
            return _failed(f"http_{status}", f"HTTP {status} (content-type {content_type}, {size_text})",
                           status)
    except ProviderFailure as exc:
        if exc.code == "base_url_redirect":
            return _failed("redirect", f"the receiver redirected (HTTP {exc.http_status}); webhook "
                                       "deliveries never follow redirects", exc.http_status)
        return _failed("address_not_allowed", exc.message.replace("base_url", "webhook_url"))
    except httpx2.TimeoutException:
        return _failed("timeout", f"no answer within {timeout:g} s")
    except httpx2.ConnectError:
        return _failed("connect_error", "could not connect to the receiver (refused, unreachable, or "
                                        "its name did not resolve)")
    except httpx2.HTTPError as exc:
        return _failed("http_error", f"the exchange with the receiver failed ({type(exc).__name__})")
