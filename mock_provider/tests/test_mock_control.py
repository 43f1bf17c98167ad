import asyncio
import urllib.error

import anthropic
import pytest

from mock_provider.testing import MockHandle, running_mock
from mock_provider.tests.conftest import MODEL, ask


def test_stats_count_requests_by_status_path_model_and_key(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    ask(client, "one")
    ask(client, "two", model="claude-opus-4-8")
    with pytest.raises(anthropic.OverloadedError):
        ask(client, "[[mock:status=529]]")
    client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "three"}])

    stats = mock.stats()

    assert stats["requests"] == 4
    assert stats["by_status"] == {"200": 3, "529": 1}
    assert stats["by_path"] == {"/v1/messages": 3, "/v1/messages/count_tokens": 1}
    assert stats["by_model"] == {MODEL: 3, "claude-opus-4-8": 1}
    assert stats["by_api_key"] == {"sk-ant-mock-test": 4}
    assert stats["tokens"]["input_tokens"] == 1 + 1  # "one", "two"; failures bill nothing
    assert stats["tokens"]["output_tokens"] > 0


def test_reset_forgets_counters_and_directive_counts(mock: MockHandle, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.OverloadedError):
        ask(client, "[[mock:status=529 times=1]]")

    mock.reset()

    assert mock.stats()["requests"] == 0
    with pytest.raises(anthropic.OverloadedError):
        ask(client, "[[mock:status=529 times=1]]")


def test_configure_changes_limits_while_running(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(rpm=7)
    headers = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}]).headers

    assert headers["anthropic-ratelimit-requests-limit"] == "7"
    assert mock.stats()["config"]["rpm"] == 7


def test_configure_refuses_unknown_fields_and_bad_values(mock: MockHandle) -> None:
    with pytest.raises(urllib.error.HTTPError) as unknown:
        mock.configure(rmp=5)
    with pytest.raises(urllib.error.HTTPError) as bad_rate:
        mock.configure(fault_rates={"529": 2})

    assert unknown.value.code == 400 and bad_rate.value.code == 400


def test_configured_latency_delays_replies(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(latency_ms=50, latency_per_token_ms=1)

    usage = ask(client, "slow please").usage

    assert mock.requests()[0]["duration"] >= 0.049 + usage.output_tokens / 1000


def test_a_paced_stream_still_delivers_the_whole_reply(mock: MockHandle, client: anthropic.Anthropic) -> None:
    plain = ask(client, "pace me").content[0].text
    mock.configure(latency_per_token_ms=0.5)

    with client.messages.stream(model=MODEL, max_tokens=100,
                                messages=[{"role": "user", "content": "pace me"}]) as stream:
        assert stream.get_final_text() == plain


def test_many_concurrent_async_calls_all_succeed() -> None:
    async def burst(base_url: str) -> list[str]:
        client = anthropic.AsyncAnthropic(api_key="sk-async", base_url=base_url, max_retries=0)
        async with client:
            replies = await asyncio.gather(*(
                client.messages.create(model=MODEL, max_tokens=50,
                                       messages=[{"role": "user", "content": f"block {i}"}])
                for i in range(200)))
        return [r.content[0].text for r in replies]

    with running_mock(latency_ms=20) as mock:
        texts = asyncio.run(burst(mock.base_url))
        assert mock.stats()["by_status"] == {"200": 200}
    assert len(set(texts)) == 200
