import re
import urllib.error

import anthropic
import pytest

from mock_provider.testing import MockHandle
from mock_provider.tests.conftest import MODEL

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def raw_call(client: anthropic.Anthropic, text: str = "hi", max_tokens: int = 10
             ) -> anthropic.APIResponse[anthropic.types.Message]:
    return client.messages.with_raw_response.create(
        model=MODEL, max_tokens=max_tokens, messages=[{"role": "user", "content": text}])


def test_every_response_carries_the_rate_limit_headers(client: anthropic.Anthropic) -> None:
    headers = raw_call(client).headers

    for dimension in ("requests", "tokens", "input-tokens", "output-tokens"):
        assert int(headers[f"anthropic-ratelimit-{dimension}-limit"]) > 0
        assert int(headers[f"anthropic-ratelimit-{dimension}-remaining"]) >= 0
        assert RFC3339.match(headers[f"anthropic-ratelimit-{dimension}-reset"])


def test_requests_remaining_counts_down_until_a_429_with_retry_after(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    mock.configure(rpm=3, burst_seconds=60)  # a minute-sized bucket: three at once

    remaining = [int(raw_call(client).headers["anthropic-ratelimit-requests-remaining"]) for _ in range(3)]
    with pytest.raises(anthropic.RateLimitError) as caught:
        raw_call(client)

    assert remaining == [2, 1, 0]
    assert caught.value.type == "rate_limit_error"
    assert caught.value.response.headers["anthropic-ratelimit-requests-limit"] == "3"
    retry_after = caught.value.response.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 20  # one request refills in 20 s


def test_the_bucket_refills_with_time(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(rpm=1)
    raw_call(client)
    with pytest.raises(anthropic.RateLimitError):
        raw_call(client)

    mock.advance(60)

    assert raw_call(client).headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_input_tokens_per_minute_are_enforced(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(itpm=100, burst_seconds=60)
    first = raw_call(client, "x" * 320)  # 80 input tokens

    with pytest.raises(anthropic.RateLimitError) as caught:
        raw_call(client, "x" * 320)

    assert first.headers["anthropic-ratelimit-input-tokens-remaining"] == "20"
    assert "100 input tokens per minute" in (caught.value.api_message or "")


def test_output_tokens_per_minute_are_charged_for_what_was_generated(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    mock.configure(otpm=50, burst_seconds=60)
    first = raw_call(client, "[[mock:output_tokens=30]] a", max_tokens=100)
    raw_call(client, "[[mock:output_tokens=30]] b", max_tokens=100)  # admitted with 20 left; goes below 0

    with pytest.raises(anthropic.RateLimitError):
        raw_call(client, "c")

    assert first.headers["anthropic-ratelimit-output-tokens-remaining"] == "20"


def test_limits_apply_per_api_key(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(rpm=1)
    raw_call(client)
    with pytest.raises(anthropic.RateLimitError):
        raw_call(client)

    assert raw_call(mock.client(api_key="sk-another-key")).parse().stop_reason


def test_the_sdk_waits_out_a_rate_limit_429_and_succeeds(mock: MockHandle) -> None:
    mock.configure(itpm=6_000, burst_seconds=60)  # refills 100 input tokens a second
    client = mock.client(max_retries=2)
    raw_call(client, "x" * 24_000)  # 6,000 tokens: the bucket is empty

    assert raw_call(client, "y" * 600).parse().stop_reason  # 150 tokens: refused, retried after retry-after

    refused, accepted = mock.requests()[-2:]
    assert (refused["status"], accepted["status"]) == (429, 200)
    assert accepted["retry_count"] == 1
    assert accepted["t"] - refused["t"] >= 0.95  # more than the SDK's own first backoff (<= 0.5 s)


def test_a_throttled_request_does_not_use_up_a_directive(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    mock.configure(rpm=1)
    raw_call(client)
    with pytest.raises(anthropic.RateLimitError):
        raw_call(client, "[[mock:status=529 times=1]] x")
    mock.advance(60)

    with pytest.raises(anthropic.OverloadedError):
        raw_call(client, "[[mock:status=529 times=1]] x")


def test_a_burst_beyond_one_seconds_worth_is_refused_with_retry_after(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    mock.configure(rpm=600)  # ten a second; by default a bucket holds one second's worth

    statuses = []
    for _ in range(15):
        try:
            raw_call(client)
            statuses.append(200)
        except anthropic.RateLimitError as refused:
            statuses.append(429)
            retry_after = refused.response.headers["retry-after"]

    assert statuses.count(200) <= 11  # ten, plus what refilled while the fifteen went out
    assert statuses[:10] == [200] * 10 and statuses[-1] == 429
    assert retry_after == "1"


def test_steady_traffic_at_the_limit_is_never_refused(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(rpm=600, itpm=60_000)  # ten requests and 1,000 input tokens a second

    for _ in range(30):
        raw_call(client, "x" * 400)  # 100 input tokens
        mock.advance(0.1)  # one request's and 100 tokens' worth refills

    assert mock.stats()["by_status"] == {"200": 30}


def test_the_headers_stay_on_the_minutes_scale_with_short_buckets(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    mock.configure(rpm=600)

    headers = raw_call(client).headers

    assert headers["anthropic-ratelimit-requests-limit"] == "600"
    assert headers["anthropic-ratelimit-requests-remaining"] == "599"


def test_a_minute_sized_burst_is_admitted_when_the_bucket_is_configured_so(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    mock.configure(rpm=600, burst_seconds=60)

    for _ in range(30):
        raw_call(client)

    assert mock.stats()["by_status"] == {"200": 30}


@pytest.mark.parametrize("bad", [0, -1, 61])
def test_burst_seconds_outside_a_minute_is_refused(mock: MockHandle, bad: float) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        mock.configure(burst_seconds=bad)

    assert refused.value.code == 400
