"""Every provider error class, classified once: table-driven over the statuses and error codes the API
documents (../shared/anthropic-api.md), built by the SDK itself from an HTTP response."""

import anthropic
import httpx2
import pytest

from apps.providers.errors import FailureKind, ProviderFailure, classify

SDK = anthropic.Anthropic(api_key="sk-test-classify", base_url="https://api.example.test", max_retries=0)
REQUEST = httpx2.Request("POST", "https://api.example.test/v1/messages")


def status_error(status: int, error_type: str, message: str = "something", *,
                 headers: dict[str, str] | None = None, error_code: str | None = None
                 ) -> anthropic.APIStatusError:
    error: dict = {"type": error_type, "message": message}
    if error_code:
        error["details"] = {"error_code": error_code}
    body = {"type": "error", "error": error, "request_id": "req_test"}
    response = httpx2.Response(status, json=body, request=REQUEST,
                               headers={"request-id": "req_test", **(headers or {})})
    return SDK._make_status_error(message, body=body, response=response)


@pytest.mark.parametrize(("status", "error_type", "kwargs", "kind", "code"), [
    (400, "invalid_request_error", {}, FailureKind.BLOCK_FATAL, "invalid_request_error"),
    (400, "invalid_request_error",
     {"message": "You have reached your specified API usage limits. You will regain access on ..."},
     FailureKind.KEY_BLOCKED, "usage_limit_reached"),
    (401, "authentication_error", {}, FailureKind.KEY_INVALID, "authentication_error"),
    (402, "billing_error", {}, FailureKind.KEY_BLOCKED, "billing_error"),
    (403, "permission_error", {}, FailureKind.KEY_INVALID, "permission_error"),
    (404, "not_found_error", {}, FailureKind.BLOCK_FATAL, "not_found_error"),
    (408, "timeout_error", {}, FailureKind.RETRYABLE, "timeout_error"),
    (409, "conflict_error", {}, FailureKind.RETRYABLE, "conflict_error"),
    (413, "request_too_large", {}, FailureKind.BLOCK_FATAL, "request_too_large"),
    (429, "rate_limit_error", {"headers": {"retry-after": "7"}}, FailureKind.THROTTLED, "rate_limit_error"),
    (429, "rate_limit_error", {"error_code": "enforced_spend_limit_reached"}, FailureKind.KEY_BLOCKED,
     "enforced_spend_limit_reached"),
    (500, "api_error", {}, FailureKind.RETRYABLE, "api_error"),
    (502, "api_error", {}, FailureKind.RETRYABLE, "api_error"),
    (503, "api_error", {}, FailureKind.RETRYABLE, "api_error"),
    (504, "timeout_error", {}, FailureKind.RETRYABLE, "timeout_error"),
    (529, "overloaded_error", {}, FailureKind.OVERLOADED, "overloaded_error"),
])
def test_each_status_is_classified_by_what_the_engine_should_do(status, error_type, kwargs, kind, code):
    failure = classify(status_error(status, error_type, **kwargs))
    assert (failure.kind, failure.code, failure.http_status) == (kind, code, status)
    assert failure.request_id == "req_test"


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"retry-after": "7"}, 7.0),
    ({"retry-after": "0.5"}, 0.5),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"retry-after": "soon"}, None),
    ({}, None),
])
def test_retry_after_is_read_in_seconds_from_either_header(headers, seconds):
    failure = classify(status_error(429, "rate_limit_error", headers=headers))
    assert failure.retry_after == seconds


@pytest.mark.parametrize(("error_type", "kind"), [
    ("overloaded_error", FailureKind.OVERLOADED),
    ("rate_limit_error", FailureKind.THROTTLED),
    ("api_error", FailureKind.RETRYABLE),
])
def test_an_error_frame_in_a_stream_is_classified_by_its_type(error_type, kind):
    assert classify(status_error(200, error_type)).kind == kind


@pytest.mark.parametrize(("exc", "code"), [
    (anthropic.APITimeoutError(request=REQUEST), "timeout"),
    (anthropic.APIConnectionError(request=REQUEST), "connection_error"),
])
def test_timeouts_and_dropped_connections_are_retryable(exc, code):
    failure = classify(exc)
    assert (failure.kind, failure.code, failure.http_status) == (FailureKind.RETRYABLE, code, None)


def test_a_message_that_echoes_the_secret_is_redacted():
    secret = "proxy-credential-Zq81Lw9Xv4Rb8Nc1Jd6Kf3"
    failure = classify(status_error(401, "authentication_error", f"invalid x-api-key {secret}"),
                       secrets=(secret,))
    assert secret not in failure.message and secret not in str(failure)


def test_a_provider_failure_passes_through_unchanged():
    failure = ProviderFailure(FailureKind.OUTPUT_PROBLEM, "max_tokens", "cut")
    assert classify(failure) is failure


def raw_error(status: int, body: bytes, content_type: str) -> anthropic.APIStatusError:
    """An error answer as the SDK builds it from whatever body came back."""
    response = httpx2.Response(status, content=body, request=REQUEST, headers={"content-type": content_type})
    return SDK._make_status_error_from_response(response)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_answer_is_the_keys_base_url_being_unsafe(status):
    failure = classify(raw_error(status, b"", "text/plain"))
    assert (failure.kind, failure.code, failure.http_status) == (
        FailureKind.KEY_UNSAFE, "base_url_redirect", status)


@pytest.mark.parametrize(("body", "content_type"), [
    (b"<html>internal admin console: db password hunter2</html>", "text/html"),
    (b'{"detail": "internal admin console: db password hunter2"}', "application/json"),
    (b'{"type": "error", "error": "internal admin console: db password hunter2"}', "application/json"),
])
def test_text_of_an_answer_that_is_not_a_provider_error_is_never_kept(body, content_type):
    failure = classify(raw_error(500, body, content_type))
    assert "hunter2" not in str(failure)


def test_an_answer_that_is_not_a_provider_error_is_described_by_status_type_and_size():
    body = b"<html>internal admin console</html>"
    failure = classify(raw_error(502, body, "text/html"))
    assert (failure.kind, failure.code) == (FailureKind.RETRYABLE, "http_502")
    assert failure.message == (
        f"HTTP 502 with a body that is not a provider error (content-type text/html, {len(body)} bytes)")


def test_a_provider_shaped_error_keeps_its_message():
    failure = classify(status_error(400, "invalid_request_error", "max_tokens: must be positive"))
    assert failure.message == "max_tokens: must be positive"


def test_a_refusal_raised_under_the_sdk_is_found_through_its_cause():
    refusal = ProviderFailure(FailureKind.KEY_UNSAFE, "base_url_not_public", "at call time: loopback")
    try:
        try:
            raise refusal
        except ProviderFailure as exc:
            raise anthropic.APIConnectionError(request=REQUEST) from exc
    except anthropic.APIConnectionError as wrapped:
        assert classify(wrapped) is refusal
