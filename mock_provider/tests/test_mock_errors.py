from typing import Any

import anthropic
import httpx2
import pytest

from mock_provider.testing import MockHandle, running_mock
from mock_provider.tests.conftest import MODEL, ask

VALID = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def error_body(exc: anthropic.APIStatusError) -> dict[str, Any]:
    assert isinstance(exc.body, dict)
    assert exc.body["request_id"] == exc.request_id
    assert exc.request_id and exc.request_id.startswith("req_")
    assert set(exc.body) == {"type", "error", "request_id"} and exc.body["type"] == "error"
    assert set(exc.body["error"]) == {"type", "message"}
    return exc.body["error"]


@pytest.mark.parametrize(("status", "error_class", "error_type"), [
    (400, anthropic.BadRequestError, "invalid_request_error"),
    (401, anthropic.AuthenticationError, "authentication_error"),
    (403, anthropic.PermissionDeniedError, "permission_error"),
    (404, anthropic.NotFoundError, "not_found_error"),
    (413, anthropic.RequestTooLargeError, "request_too_large"),
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (504, anthropic.GatewayTimeoutError, "timeout_error"),
    (529, anthropic.OverloadedError, "overloaded_error"),
])
def test_each_injected_status_raises_the_sdks_own_exception(
    client: anthropic.Anthropic, status: int, error_class: type[anthropic.APIStatusError], error_type: str,
) -> None:
    with pytest.raises(error_class) as caught:
        ask(client, f"[[mock:status={status}]] some block")

    assert caught.value.status_code == status
    assert caught.value.type == error_type
    assert error_body(caught.value)["type"] == error_type


def test_a_key_outside_the_configured_set_gets_an_authentication_error() -> None:
    with (running_mock(api_keys=["sk-good"]) as mock, mock.client(api_key="sk-bad") as client,
          pytest.raises(anthropic.AuthenticationError) as caught):
        ask(client, "hi")

    assert error_body(caught.value) == {"type": "authentication_error", "message": "invalid x-api-key"}


def test_a_configured_key_is_accepted_as_bearer_or_x_api_key() -> None:
    with running_mock(api_keys=["sk-good"]) as mock:
        bearer = mock.client(api_key="sk-good")  # SDK 2.x: Authorization: Bearer
        legacy = anthropic.Anthropic(base_url=mock.base_url, max_retries=0,
                                     default_headers={"x-api-key": "sk-good"})  # SDK 0.x/1.x style
        assert ask(bearer, "hi").stop_reason
        assert ask(legacy, "hi").stop_reason
        assert mock.stats()["by_api_key"] == {"sk-good": 2}


def test_any_non_empty_key_is_valid_when_none_are_configured(client: anthropic.Anthropic) -> None:
    assert ask(client, "hi").stop_reason


def test_a_request_without_a_key_gets_an_authentication_error(mock: MockHandle) -> None:
    client = anthropic.Anthropic(base_url=mock.base_url, max_retries=0,
                                 default_headers={"Authorization": anthropic.omit})

    with pytest.raises(anthropic.AuthenticationError) as caught:
        ask(client, "hi")

    assert error_body(caught.value)["type"] == "authentication_error"


def test_both_api_versions_are_accepted(mock: MockHandle) -> None:
    for version in ("2023-06-01", "2026-10-21"):
        client = mock.client(default_headers={"anthropic-version": version})
        assert ask(client, "hi").stop_reason


def test_a_request_without_anthropic_version_is_refused(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(client, "hi", extra_headers={"anthropic-version": anthropic.omit})

    assert error_body(caught.value) == {"type": "invalid_request_error",
                                        "message": "anthropic-version: header is required"}


def test_temperature_is_refused_under_api_version_2026_10_21(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(client, "hi", extra_body={"temperature": 0.2})

    assert error_body(caught.value)["message"] == "temperature: Extra inputs are not permitted"


def test_temperature_is_accepted_under_api_version_2023_06_01(mock: MockHandle) -> None:
    client = mock.client(default_headers={"anthropic-version": "2023-06-01"})

    assert ask(client, "hi", extra_body={"temperature": 0.2}).stop_reason


def _post(client: anthropic.Anthropic, body: dict[str, Any]) -> None:
    client.post("/v1/messages", cast_to=httpx2.Response, body=body)


BAD_BODIES: dict[str, tuple[dict[str, Any], str]] = {
    "missing max_tokens": ({"model": MODEL, "messages": VALID["messages"]}, "max_tokens: Field required"),
    "missing model": ({"max_tokens": 10, "messages": VALID["messages"]}, "model: Field required"),
    "missing messages": ({"model": MODEL, "max_tokens": 10}, "messages: Field required"),
    "empty messages": ({**VALID, "messages": []}, "messages: at least one message is required"),
    "max_tokens as text": ({**VALID, "max_tokens": "ten"}, "max_tokens: Input should be a valid integer"),
    "negative max_tokens": ({**VALID, "max_tokens": -1}, "max_tokens: Input should be greater than"),
    "max_tokens over the model's cap": ({**VALID, "max_tokens": 64_001}, "max_tokens: 64001 > 64000"),
    "messages not a list": ({**VALID, "messages": "hi"}, "messages: Input should be a valid list"),
    "a message not an object": ({**VALID, "messages": ["hi"]}, "messages.0: Input should be a valid"),
    "an unknown role": ({**VALID, "messages": [{"role": "robot", "content": "hi"}]},
                        "messages.0.role: Input should be 'user' or 'assistant'"),
    "content as a number": ({**VALID, "messages": [{"role": "user", "content": 42}]}, "messages.0.content"),
    "an empty text block": (
        {**VALID, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
        "messages: text content blocks must be non-empty"),
    "empty content": ({**VALID, "messages": [{"role": "user", "content": ""}]},
                      "messages.0: all messages must have non-empty content"),
    "system as a number": ({**VALID, "system": 5}, "system: Input should be"),
    "stream as text": ({**VALID, "stream": "yes"}, "stream: Input should be a valid boolean"),
    "stop_sequences as text": ({**VALID, "stop_sequences": "END"}, "stop_sequences: Input should be"),
    "a bad cache_control type": ({**VALID, "system": [{"type": "text", "text": "x",
                                                       "cache_control": {"type": "forever"}}]},
                                 "system.0.cache_control.type: Input should be 'ephemeral'"),
    "a bad cache TTL": ({**VALID, "system": [{"type": "text", "text": "x",
                                              "cache_control": {"type": "ephemeral", "ttl": "2h"}}]},
                        "system.0.cache_control.ttl: Input should be '5m' or '1h'"),
    "five cache breakpoints": (
        {**VALID, "system": [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
                             for i in range(5)]},
        "A maximum of 4 blocks with cache_control may be provided. Found 5."),
    "four breakpoints plus automatic caching": (
        {**VALID, "cache_control": {"type": "ephemeral"},
         "system": [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
                    for i in range(4)]},
        "A maximum of 4 blocks with cache_control may be provided. Found 5."),
    "a 1h breakpoint after a 5m one": (
        {**VALID, "system": [
            {"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "5m"}},
            {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
        "cache_control: a block with ttl='1h' cannot come after a block with ttl='5m'"),
    "an unknown mock directive": ({**VALID, "messages": [{"role": "user", "content": "[[mock:explode]]"}]},
                                  "mock directive [[mock:explode]]: unknown action 'explode'"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_a_bad_request_gets_the_apis_invalid_request_error(client: anthropic.Anthropic, case: str) -> None:
    body, expected = BAD_BODIES[case]

    with pytest.raises(anthropic.BadRequestError) as caught:
        _post(client, body)

    error = error_body(caught.value)
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(expected)


@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b"null", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_gets_an_invalid_request_error(
    client: anthropic.Anthropic, content: bytes,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.post("/v1/messages", cast_to=httpx2.Response, content=content,
                    options={"headers": {"content-type": "application/json"}})

    assert error_body(caught.value)["type"] == "invalid_request_error"


def test_an_unknown_model_gets_the_apis_not_found_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        ask(client, "hi", model="claude-imaginary-9")

    assert error_body(caught.value) == {"type": "not_found_error", "message": "model: claude-imaginary-9"}


def test_retrieving_an_unknown_model_gets_a_not_found_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-imaginary-9")


def test_a_body_over_the_size_limit_gets_request_too_large(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    mock.configure(max_body_bytes=2_000)

    with pytest.raises(anthropic.ContentTooLargeError) as caught:
        ask(client, "x" * 3_000)

    assert error_body(caught.value)["type"] == "request_too_large"
    assert ask(client, "x" * 1_000).stop_reason  # under the limit is fine


def test_the_control_api_is_not_reachable_under_v1(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        client.get("/v1/_mock/stats", cast_to=httpx2.Response)
    with pytest.raises(anthropic.NotFoundError):
        client.post("/v1/_mock/reset", cast_to=httpx2.Response)
