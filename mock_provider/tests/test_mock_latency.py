"""Latency with jitter: real calls of one size do not all take the same time."""

import anthropic

from mock_provider.config import MockConfig
from mock_provider.state import MockState
from mock_provider.testing import MockHandle
from mock_provider.tests.conftest import ask


def test_jittered_latencies_spread_over_the_whole_range_and_no_further() -> None:
    state = MockState(MockConfig(latency_ms=15_000, latency_jitter_ms=5_000))

    draws = [state.reply_latency_ms() for _ in range(2_000)]

    assert all(10_000 <= d <= 20_000 for d in draws)
    assert min(draws) < 10_500 and max(draws) > 19_500  # uniform: both ends are reached


def test_the_same_seed_gives_the_same_latencies() -> None:
    config = MockConfig(latency_ms=100, latency_jitter_ms=50, seed=3)

    first, second = MockState(config), MockState(config)

    assert [first.reply_latency_ms() for _ in range(5)] == [second.reply_latency_ms() for _ in range(5)]


def test_jitter_larger_than_the_latency_never_goes_below_zero() -> None:
    state = MockState(MockConfig(latency_ms=10, latency_jitter_ms=50))

    assert min(state.reply_latency_ms() for _ in range(500)) == 0.0


def test_without_jitter_every_reply_takes_the_configured_latency() -> None:
    state = MockState(MockConfig(latency_ms=250))

    assert {state.reply_latency_ms() for _ in range(20)} == {250.0}


def test_a_reply_waits_at_least_the_low_end_of_its_jittered_latency(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    mock.configure(latency_ms=60, latency_jitter_ms=20)

    for n in range(5):
        ask(client, f"call {n}")

    assert all(r["duration"] >= 0.039 for r in mock.requests())
    assert mock.stats()["peak_in_flight"] == 1
