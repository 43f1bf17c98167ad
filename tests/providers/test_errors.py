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
