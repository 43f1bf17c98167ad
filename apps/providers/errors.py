"""Every provider error is classified here, once, into what the engine should do about it."""

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import anthropic

from apps.core.redaction import redact_text
from apps.providers.headers import RateLimitHeaders, parse_headers
from apps.providers.usage import TokenUsage


class FailureKind(enum.StrEnum):
    # Try the block again later (5xx, timeouts, dropped connections); uses an attempt.
    RETRYABLE = "retryable"
    # The provider is rationing this key (429): its lane waits until Retry-After; not the block's fault.
    THROTTLED = "throttled"
    # The provider is overloaded (529): this call backs off with jitter and its lane's concurrency is
    # cut; not the block's fault either, so no attempt is used.
    OVERLOADED = "overloaded"
    # The key itself is bad (401/403): mark it invalid and pause its runs.
    KEY_INVALID = "key_invalid"
    # The key cannot spend (402 billing, a spend limit reached): pause its runs, key stays valid.
    KEY_BLOCKED = "key_blocked"
    # This block's request can never succeed as sent (400, 404 model, 413 too large).
    BLOCK_FATAL = "block_fatal"
    # The reply was cut at max_tokens or could not be mapped back to the blocks: split the pack,
    # else fail the block.
    OUTPUT_PROBLEM = "output_problem"
    # A run with an output schema got an answer that is no document of it (cut at max_tokens, a
    # refusal, or one that does not parse or validate: apps.providers.structured): try the block again
    # within its attempts, then fail it with `output_invalid`.
    OUTPUT_INVALID = "output_invalid"
    # The key's base_url broke an address rule at call time: it redirects, or its name resolves to a
    # non-public address now (apps.providers.transport). No call was made there; pause its runs.
    KEY_UNSAFE = "key_unsafe"


@dataclass(eq=False)
class ProviderFailure(Exception):
    kind: FailureKind
    code: str
    message: str
    http_status: int | None = None
    request_id: str = ""
    retry_after: float | None = None
    # Text received before a stream broke: kept for diagnosis, never accepted as a result.
    partial_text: str = ""
    # Tokens the failed call was billed for (a max_tokens reply costs as much as a good one).
    usage: TokenUsage = field(default_factory=TokenUsage)
    # The response's anthropic-ratelimit-* headers, when there was a response.
    rate_limits: RateLimitHeaders = field(default_factory=RateLimitHeaders)
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def parse_retry_after(headers: object) -> float | None:
    """Seconds to wait from `retry-after-ms`, `retry-after` (seconds or HTTP date), else None."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    if (ms := get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def redirect_refused(status: int) -> ProviderFailure:
    return ProviderFailure(
        FailureKind.KEY_UNSAFE, "base_url_redirect",
        f"the base_url redirects (HTTP {status}); provider calls never follow redirects, so point the "
        "key at the URL that answers directly",
        http_status=status,
    )


def is_provider_error_body(body: object) -> bool:
    """The provider's error shape, `{"type": "error", "error": {"type": ..., "message": ...}}`. Text
    from any other body (a proxy's HTML page, some internal service's answer) is never kept."""
    if not isinstance(body, dict) or body.get("type") != "error":
        return False
    error = body.get("error")
    return isinstance(error, dict) and isinstance(error.get("type"), str)


def describe_foreign_response(exc: anthropic.APIStatusError) -> str:
    """What we keep of an error answer that is not provider-shaped: status, content type and size."""
    response = exc.response
    content_type = response.headers.get("content-type", "") or "none"
    try:
        size = f"{len(response.content)} bytes"
    except Exception:  # a streamed body that was never read
        size = "unread body"
    return (f"HTTP {exc.status_code} with a body that is not a provider error "
            f"(content-type {content_type[:100]}, {size})")


def _failure_in_causes(exc: BaseException) -> ProviderFailure | None:
    """The SDK wraps an exception raised by its HTTP transport (apps.providers.transport refusing a
    redirect or an address) in APIConnectionError; the refusal itself is the cause."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ProviderFailure):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def classify(exc: BaseException, *, secrets: tuple[str, ...] = ()) -> ProviderFailure:
    """Map an SDK exception to a ProviderFailure. Messages are redacted: a provider that echoes
    the key back must not carry it into our database or logs."""
    if (failure := _failure_in_causes(exc)) is not None:
        return failure
    message = redact_text(str(exc), secrets)
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderFailure(FailureKind.RETRYABLE, "timeout", message)
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderFailure(FailureKind.RETRYABLE, "connection_error", message)
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        if 300 <= status < 400:
            # The transport refuses these before the SDK sees them; this covers any other client.
            return redirect_refused(status)
        if is_provider_error_body(exc.body):
            error_type = exc.type or f"http_{status}"
            api_message = redact_text(exc.api_message or message, secrets)
        else:
            error_type = f"http_{status}"
            api_message = describe_foreign_response(exc)
        common: dict[str, Any] = {
            "http_status": status,
            "request_id": exc.request_id or "",
            "message": api_message,
        }
        # A mid-stream `event: error` arrives with the 200 of the stream that carried it.
        if status == 200:
            kind = {"overloaded_error": FailureKind.OVERLOADED,
                    "rate_limit_error": FailureKind.THROTTLED}.get(error_type, FailureKind.RETRYABLE)
            return ProviderFailure(kind, error_type, **common)
        retry_after = parse_retry_after(exc.response.headers)
        common["rate_limits"] = parse_headers(exc.response.headers)
        if status in (401, 403):
            return ProviderFailure(FailureKind.KEY_INVALID, error_type, **common)
        if status == 402 or exc.error_code in (
            "enforced_spend_limit_reached",
            "contract_spend_limit_reached",
        ):
            return ProviderFailure(FailureKind.KEY_BLOCKED, exc.error_code or error_type, **common)
        if status == 400 and api_message.startswith("You have reached your specified API usage"):
            return ProviderFailure(FailureKind.KEY_BLOCKED, "usage_limit_reached", **common)
        if status == 429:
            return ProviderFailure(FailureKind.THROTTLED, error_type, retry_after=retry_after, **common)
        if status == 529:
            return ProviderFailure(FailureKind.OVERLOADED, error_type, retry_after=retry_after, **common)
        if status in (408, 409) or status >= 500:
            return ProviderFailure(
                FailureKind.RETRYABLE, error_type, retry_after=retry_after, **common
            )
        return ProviderFailure(FailureKind.BLOCK_FATAL, error_type, **common)
    return ProviderFailure(FailureKind.RETRYABLE, type(exc).__name__, message)


# A batch request's error arrives as a body, not an HTTP answer: its type says what it would have been.
ERROR_TYPE_KIND = {
    "invalid_request_error": FailureKind.BLOCK_FATAL,
    "not_found_error": FailureKind.BLOCK_FATAL,
    "request_too_large": FailureKind.BLOCK_FATAL,
    "authentication_error": FailureKind.KEY_INVALID,
    "permission_error": FailureKind.KEY_INVALID,
    "billing_error": FailureKind.KEY_BLOCKED,
    "rate_limit_error": FailureKind.THROTTLED,
    "overloaded_error": FailureKind.OVERLOADED,
}


def classify_error_body(body: dict | None, *, secrets: tuple[str, ...] = ()) -> ProviderFailure:
    """A `{"type": "error", "error": {"type", "message"}}` body (a batch request's `errored`
    result) classified as the same error answered over HTTP would be."""
    error = (body or {}).get("error") or {}
    error_type = str(error.get("type") or "api_error")
    message = redact_text(str(error.get("message") or error_type), secrets)
    details = error.get("details") or {}
    if details.get("error_code") in ("enforced_spend_limit_reached", "contract_spend_limit_reached"):
        return ProviderFailure(FailureKind.KEY_BLOCKED, details["error_code"], message,
                               request_id=str((body or {}).get("request_id") or ""))
    kind = ERROR_TYPE_KIND.get(error_type, FailureKind.RETRYABLE)
    return ProviderFailure(kind, error_type, message, request_id=str((body or {}).get("request_id") or ""))


def about_the_model(failure: ProviderFailure) -> bool:
    """The model, not the key or the request, is what cannot serve: `not_found_error` (retired, or
    not enabled for the key: the API names the model, `model: <id>`), or a `permission_error` that
    names the model. A run with fallback models moves the block on to the next one."""
    if failure.code == "not_found_error" or (
            failure.http_status == 404 and failure.kind == FailureKind.BLOCK_FATAL):
        return True
    return failure.code == "permission_error" and "model" in failure.message.lower()
