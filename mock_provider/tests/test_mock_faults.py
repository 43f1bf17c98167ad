import anthropic
import pytest

from mock_provider.testing import MockHandle
from mock_provider.tests.conftest import MODEL, ask


def statuses(mock: MockHandle) -> list[int | None]:
    return [r["status"] for r in mock.requests()]


def test_a_status_directive_fails_the_first_n_requests_then_lets_them_through(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    text = "Block 17 [[mock:status=529 times=2]]"
    for _ in range(2):
        with pytest.raises(anthropic.OverloadedError):
            ask(client, text)

    assert ask(client, text).stop_reason == "end_turn"
    assert statuses(mock) == [529, 529, 200]
    assert mock.stats()["by_fault"] == {"directive:status=529 times=2": 2}


def test_a_status_directive_without_times_always_fails(client: anthropic.Anthropic) -> None:
    for _ in range(3):
        with pytest.raises(anthropic.InternalServerError):
            ask(client, "[[mock:status=500]]")


def test_the_same_directive_is_counted_separately_for_each_text(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.OverloadedError):
        ask(client, "alpha [[mock:status=529 times=1]]")
    with pytest.raises(anthropic.OverloadedError):
        ask(client, "beta [[mock:status=529 times=1]]")

    assert ask(client, "alpha [[mock:status=529 times=1]]").stop_reason == "end_turn"
    assert ask(client, "beta [[mock:status=529 times=1]]").stop_reason == "end_turn"


def test_a_directive_in_the_system_prompt_applies_to_the_request(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.PermissionDeniedError):
        ask(client, "hi", system="[[mock:status=403]] You are terse.")


def test_an_injected_429_carries_retry_after_only_when_asked(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as with_header:
        ask(client, "[[mock:status=429 retry_after=7]]")
    with pytest.raises(anthropic.RateLimitError) as without_header:
        ask(client, "[[mock:status=429]]")

    assert with_header.value.response.headers["retry-after"] == "7"
    assert "retry-after" not in without_header.value.response.headers


def test_the_sdk_waits_for_retry_after_before_its_retry(mock: MockHandle) -> None:
    client = mock.client(max_retries=1)

    message = ask(client, "[[mock:status=429 retry_after=1 times=1]] hello")

    assert message.stop_reason == "end_turn"
    first, second = mock.requests()
    assert (first["status"], second["status"]) == (429, 200)
    assert (first["retry_count"], second["retry_count"]) == (0, 1)
    # The SDK's own backoff would be at most 0.5 s: waiting a whole second means it read retry-after.
    assert second["t"] - first["t"] >= 0.95


def test_the_sdk_retries_a_529_until_it_passes(mock: MockHandle) -> None:
    client = mock.client(max_retries=2)

    assert ask(client, "[[mock:status=529 retry_after=0 times=1]] x").stop_reason == "end_turn"
    assert statuses(mock) == [529, 200]


def test_a_hang_outlasts_the_client_timeout(mock: MockHandle) -> None:
    client = mock.client(timeout=0.3)

    with pytest.raises(anthropic.APITimeoutError):
        ask(client, "[[mock:hang times=1]] slow block")

    assert ask(client, "[[mock:hang times=1]] slow block").stop_reason == "end_turn"


def test_a_drop_closes_the_connection_without_a_response(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    with pytest.raises(anthropic.APIConnectionError):
        ask(client, "[[mock:drop times=1]] fragile block")

    assert ask(client, "[[mock:drop times=1]] fragile block").stop_reason == "end_turn"
    dropped = mock.requests()[0]
    assert dropped["status"] is None and dropped["outcome"] == "dropped"


def test_a_stream_error_breaks_the_stream_after_some_text(client: anthropic.Anthropic) -> None:
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught, client.messages.stream(
        model=MODEL, max_tokens=1000,
        messages=[{"role": "user", "content": "[[mock:stream_error times=1]] A block long enough to stream"}],
    ) as stream:
        received.extend(stream.text_stream)

    # Raised from the `event: error` frame, with the stream's own 200 status (not retried by the SDK).
    assert caught.value.status_code == 200
    assert caught.value.type == "overloaded_error"
    assert received and "".join(received).startswith("Reply ")


def test_a_stream_error_directive_is_ignored_without_streaming(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    text = "[[mock:stream_error times=1]] block"

    assert ask(client, text).stop_reason == "end_turn"
    with pytest.raises(anthropic.APIStatusError), client.messages.stream(
        model=MODEL, max_tokens=1000, messages=[{"role": "user", "content": text}],
    ) as stream:
        stream.get_final_message()
    assert [r["outcome"] for r in mock.requests()] == ["ok", "stream_error"]


def test_a_max_tokens_directive_truncates_the_reply(client: anthropic.Anthropic) -> None:
    whole = ask(client, "Some block [[mock:max_tokens]]")
    assert whole.stop_reason == "max_tokens"
    assert ask(client, "Some block").content[0].text.startswith(whole.content[0].text)


def test_an_output_tokens_directive_sets_the_reply_length(client: anthropic.Anthropic) -> None:
    message = ask(client, "Write a lot. [[mock:output_tokens=300]]")

    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 300


def test_a_latency_directive_delays_the_reply(mock: MockHandle, client: anthropic.Anthropic) -> None:
    ask(client, "[[mock:latency_ms=150]] wait a little")

    # Measured by the mock itself: a lower bound, which no slow machine can break.
    assert mock.requests()[0]["duration"] >= 0.149


def test_random_faults_follow_their_rates(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(fault_rates={"529": 1.0})

    with pytest.raises(anthropic.OverloadedError):
        ask(client, "hi")
    assert mock.stats()["by_fault"] == {"random:529": 1}


def test_random_faults_repeat_for_the_same_seed(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(fault_rates={"500": 0.5}, seed=42)

    def run() -> list[bool]:
        outcomes = []
        for i in range(16):
            try:
                ask(client, f"block {i}", max_tokens=5)
                outcomes.append(True)
            except anthropic.InternalServerError:
                outcomes.append(False)
        return outcomes

    first = run()
    mock.reset()
    assert run() == first
    assert True in first and False in first


def test_random_429s_come_with_and_without_retry_after(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(fault_rates={"429": 1.0}, fault_retry_after=3)
    with pytest.raises(anthropic.RateLimitError) as with_header:
        ask(client, "hi")
    mock.configure(fault_rates={"429_no_retry_after": 1.0})
    with pytest.raises(anthropic.RateLimitError) as without_header:
        ask(client, "hi")

    assert with_header.value.response.headers["retry-after"] == "3"
    assert "retry-after" not in without_header.value.response.headers


def test_random_drops_break_the_connection(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(fault_rates={"drop": 1.0})

    with pytest.raises(anthropic.APIConnectionError):
        ask(client, "hi")
