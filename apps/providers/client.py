"""Calls to the provider through the official SDK, with the SDK's own retries off: our policy (in the
database, see apps.runs) owns retries, so that a wait never holds a worker or a lease.

Every client is built here, over apps.providers.transport: no redirects are followed, and every
connection is checked against the base_url rules on the address it actually connects to.
"""

import time
from dataclasses import dataclass, field
from typing import Any

import anthropic
from django.conf import settings

from apps.providers.errors import FailureKind, ProviderFailure, classify
from apps.providers.headers import RateLimitHeaders, parse_headers
from apps.providers.transport import guarded_async_http_client, guarded_http_client
from apps.providers.usage import TokenUsage

ANTHROPIC_BASE_URL = "https://api.anthropic.com"


@dataclass(frozen=True)
class CallResult:
    text: str
    stop_reason: str
    usage: TokenUsage
    request_id: str
    model: str
    latency_ms: int
    # True when a stream broke and the non-streaming fallback produced this result.
    fell_back: bool = False
    # What the response's anthropic-ratelimit-* headers said (the lanes learn from them).
    rate_limits: RateLimitHeaders = field(default_factory=RateLimitHeaders)


def _timeout() -> float:
    return settings.CONVEYOR["PROVIDER_TIMEOUT_SECONDS"]


def _open_telemetry() -> anthropic.OpenTelemetryOptions | None:
    """None leaves the SDK's tracing as it configures itself (PROVIDER_TRACES on); else no spans and
    no trace context sent."""
    return None if settings.CONVEYOR["PROVIDER_TRACES"] else {"traces": False, "propagation": False}


def make_async_client(*, api_key: str, base_url: str = "", timeout: float | None = None,
                      max_connections: int = 1000, max_keepalive: int | None = None
                      ) -> anthropic.AsyncAnthropic:
    """`max_connections`: the calls it can hold at once (more wait inside the HTTP client for a
    connection, silently); `max_keepalive`: idle connections kept (default: at most 100)."""
    timeout = timeout or _timeout()
    return anthropic.AsyncAnthropic(
        api_key=api_key,
        base_url=base_url or ANTHROPIC_BASE_URL,
        max_retries=0,
        timeout=timeout,
        http_client=guarded_async_http_client(timeout=timeout, max_connections=max_connections,
                                              max_keepalive=max_keepalive),
        open_telemetry=_open_telemetry(),
    )


def make_client(*, api_key: str, base_url: str = "", timeout: float | None = None
                ) -> anthropic.Anthropic:
    timeout = timeout or _timeout()
    return anthropic.Anthropic(
        api_key=api_key,
        base_url=base_url or ANTHROPIC_BASE_URL,
        max_retries=0,
        timeout=timeout,
        http_client=guarded_http_client(timeout=timeout),
        open_telemetry=_open_telemetry(),
    )


def _text_of(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


@dataclass(frozen=True)
class _Reply:
    """The parts of a Message the engine reads, from the SDK's model or from the raw JSON."""

    text: str
    stop_reason: str
    usage: TokenUsage
    model: str

    @classmethod
    def of_message(cls, message: Any) -> "_Reply":
        return cls(_text_of(message), message.stop_reason or "", TokenUsage.from_sdk(message.usage),
                   message.model)

    @classmethod
    def of_json(cls, body: dict[str, Any]) -> "_Reply":
        text = "".join(b.get("text", "") for b in body.get("content") or [] if b.get("type") == "text")
        return cls(text, body.get("stop_reason") or "", TokenUsage.from_json(body.get("usage")),
                   body.get("model") or "")


def _result(reply: _Reply, request_id: str, started: float, rate_limits: RateLimitHeaders,
            fell_back: bool = False) -> CallResult:
    usage = reply.usage
    latency_ms = int((time.monotonic() - started) * 1000)
    if reply.stop_reason == "max_tokens":
        raise ProviderFailure(
            FailureKind.OUTPUT_PROBLEM, "max_tokens",
            f"reply stopped at max_tokens after {usage.output_tokens} tokens",
            http_status=200, request_id=request_id, partial_text=reply.text, usage=usage,
            rate_limits=rate_limits,
        )
    if reply.stop_reason in ("refusal", "model_context_window_exceeded"):
        raise ProviderFailure(
            FailureKind.BLOCK_FATAL, reply.stop_reason, f"model stopped: {reply.stop_reason}",
            http_status=200, request_id=request_id, partial_text=reply.text, usage=usage,
            rate_limits=rate_limits,
        )
    return CallResult(
        text=reply.text, stop_reason=reply.stop_reason, usage=usage, request_id=request_id,
        model=reply.model, latency_ms=latency_ms, fell_back=fell_back, rate_limits=rate_limits,
    )


async def call_messages(client: anthropic.AsyncAnthropic, params: dict[str, Any], *,
                        stream: bool = False, secrets: tuple[str, ...] = (),
                        headers: dict[str, str] | None = None) -> CallResult:
    """One provider call. Raises ProviderFailure (classified, redacted) on any error.

    With `stream`, a stream that breaks after it started falls back to one non-streaming call; the
    partial text is kept on the failure for diagnosis, never accepted as a result.
    """
    started = time.monotonic()
    extra: dict[str, Any] = {"extra_headers": headers} if headers else {}
    partial = ""
    try:
        if stream:
            async with client.messages.stream(**params, **extra) as s:
                rate_limits = parse_headers(s.response.headers)
                try:
                    message = await s.get_final_message()
                except (anthropic.APIConnectionError, anthropic.APIStatusError) as exc:
                    # Errors before the stream started were raised by __aenter__ above; only a
                    # stream that broke mid-way (a dropped connection, an `event: error` frame,
                    # which the SDK raises with the stream's 200 status) falls back.
                    timed_out = isinstance(exc, anthropic.APITimeoutError)
                    if timed_out or (isinstance(exc, anthropic.APIStatusError) and exc.status_code != 200):
                        raise
                    partial = _snapshot_text(s)
                else:
                    return _result(_Reply.of_message(message), s.request_id or "", started, rate_limits)
        # The raw response: its headers (rate limits) and its JSON, read without building the SDK's
        # typed Message (a sixth of the client's CPU per call, measured).
        raw = await client.messages.with_raw_response.create(**params, **extra)
        body = await raw.json()
        return _result(_Reply.of_json(body), raw.request_id or "", started, parse_headers(raw.headers),
                       bool(partial))
    except anthropic.APIError as exc:
        failure = classify(exc, secrets=secrets)
        failure.partial_text = partial
        raise failure from None


def _snapshot_text(stream: Any) -> str:
    try:
        return _text_of(stream.current_message_snapshot) or " "
    except Exception:  # no message_start yet: nothing was received
        return " "
