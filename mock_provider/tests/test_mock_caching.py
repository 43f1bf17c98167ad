from typing import Any

import anthropic
import pytest

from mock_provider.testing import MockHandle
from mock_provider.tests.conftest import ask

# Sonnet 4.6 caches prompts of 1,024 tokens and more; this system prompt is 1,160 tokens (4,640 chars).
MODEL = "claude-sonnet-4-6"
POLICY = "You are a careful assistant. " * 160
POLICY_TOKENS = 1_160
GLOSSARY = "Terms: widget, gadget, doohickey. " * 40  # 1,360 chars, 340 tokens


def cached_call(client: anthropic.Anthropic, question: str = "Question one?", *, ttl: str = "5m",
                model: str = MODEL, **params: Any) -> anthropic.types.Usage:
    return client.messages.create(
        model=model, max_tokens=50,
        system=[{"type": "text", "text": POLICY, "cache_control": {"type": "ephemeral", "ttl": ttl}}],
        messages=[{"role": "user", "content": question}],
        **params,
    ).usage


def test_a_first_call_writes_the_cache_and_the_next_reads_it(client: anthropic.Anthropic) -> None:
    first = cached_call(client, "Question one?")
    second = cached_call(client, "Another question?")

    assert (first.cache_creation_input_tokens, first.cache_read_input_tokens) == (POLICY_TOKENS, 0)
    assert first.cache_creation is not None
    assert first.cache_creation.ephemeral_5m_input_tokens == POLICY_TOKENS
    assert first.cache_creation.ephemeral_1h_input_tokens == 0
    assert (second.cache_creation_input_tokens, second.cache_read_input_tokens) == (0, POLICY_TOKENS)


def test_input_tokens_count_only_what_follows_the_last_breakpoint(client: anthropic.Anthropic) -> None:
    usage = cached_call(client, "Question one?")  # 13 characters

    assert usage.input_tokens == 4


def test_a_5m_entry_is_missed_once_the_ttl_has_passed(mock: MockHandle, client: anthropic.Anthropic) -> None:
    cached_call(client)
    mock.advance(299)
    assert cached_call(client).cache_read_input_tokens == POLICY_TOKENS

    mock.advance(301)
    expired = cached_call(client)

    assert (expired.cache_creation_input_tokens, expired.cache_read_input_tokens) == (POLICY_TOKENS, 0)


def test_a_hit_refreshes_the_ttl(mock: MockHandle, client: anthropic.Anthropic) -> None:
    cached_call(client)
    for _ in range(3):
        mock.advance(200)  # 600 s in all, but never 300 s without a hit
        assert cached_call(client).cache_read_input_tokens == POLICY_TOKENS


def test_a_1h_entry_outlives_five_minutes_but_not_an_hour(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    first = cached_call(client, ttl="1h")
    assert first.cache_creation is not None
    assert first.cache_creation.ephemeral_1h_input_tokens == POLICY_TOKENS

    mock.advance(600)
    assert cached_call(client, ttl="1h").cache_read_input_tokens == POLICY_TOKENS
    mock.advance(3_601)
    assert cached_call(client, ttl="1h").cache_creation_input_tokens == POLICY_TOKENS


def test_mixed_ttls_bill_1h_writes_then_5m_writes(client: anthropic.Anthropic) -> None:
    def call() -> anthropic.types.Usage:
        return client.messages.create(
            model=MODEL, max_tokens=50,
            system=[{"type": "text", "text": POLICY, "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            messages=[{"role": "user", "content": [
                {"type": "text", "text": GLOSSARY, "cache_control": {"type": "ephemeral", "ttl": "5m"}},
                {"type": "text", "text": "Which term is best?"},
            ]}],
        ).usage

    first, second = call(), call()

    assert first.cache_creation is not None
    assert first.cache_creation.ephemeral_1h_input_tokens == POLICY_TOKENS
    assert first.cache_creation.ephemeral_5m_input_tokens == 340
    assert first.cache_creation_input_tokens == POLICY_TOKENS + 340
    assert second.cache_read_input_tokens == POLICY_TOKENS + 340
    assert second.cache_creation_input_tokens == 0


def test_a_longer_prompt_reads_the_shorter_prefix_and_writes_the_rest(client: anthropic.Anthropic) -> None:
    cached_call(client)
    usage = client.messages.create(
        model=MODEL, max_tokens=50,
        system=[{"type": "text", "text": POLICY, "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [
            {"type": "text", "text": GLOSSARY, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Which term is best?"},
        ]}],
    ).usage

    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (POLICY_TOKENS, 340)


def test_a_prompt_below_the_models_minimum_is_not_cached(client: anthropic.Anthropic) -> None:
    # Haiku 4.5 needs 4,096 tokens: the same 1,160-token prompt is silently not cached there.
    usage = cached_call(client, model="claude-haiku-4-5")
    again = cached_call(client, model="claude-haiku-4-5")

    for u in (usage, again):
        assert (u.cache_creation_input_tokens, u.cache_read_input_tokens) == (0, 0)
        assert u.input_tokens == POLICY_TOKENS + 4


def test_top_level_cache_control_caches_up_to_the_last_block(client: anthropic.Anthropic) -> None:
    def call() -> anthropic.types.Usage:
        return client.messages.create(
            model=MODEL, max_tokens=50, system=POLICY,
            messages=[{"role": "user", "content": "Question one?"}],
            extra_body={"cache_control": {"type": "ephemeral"}},
        ).usage

    first, second = call(), call()

    assert first.cache_creation_input_tokens == POLICY_TOKENS + 4 and first.input_tokens == 0
    assert second.cache_read_input_tokens == POLICY_TOKENS + 4


def test_the_cache_is_not_shared_between_api_keys(mock: MockHandle, client: anthropic.Anthropic) -> None:
    cached_call(client)

    other = cached_call(mock.client(api_key="sk-someone-else"))

    assert (other.cache_creation_input_tokens, other.cache_read_input_tokens) == (POLICY_TOKENS, 0)


def test_a_failed_request_writes_nothing_to_the_cache(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.OverloadedError):
        cached_call(client, "[[mock:status=529]]")

    assert cached_call(client).cache_creation_input_tokens == POLICY_TOKENS


def test_a_streamed_call_reports_cache_usage(client: anthropic.Anthropic) -> None:
    cached_call(client)
    with client.messages.stream(
        model=MODEL, max_tokens=50,
        system=[{"type": "text", "text": POLICY, "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "Streamed question?"}],
    ) as stream:
        usage = stream.get_final_message().usage

    assert usage.cache_read_input_tokens == POLICY_TOKENS and usage.cache_creation_input_tokens == 0


def test_count_tokens_counts_the_whole_prompt_cached_or_not(client: anthropic.Anthropic) -> None:
    cached_call(client)
    usage = cached_call(client)
    counted = client.messages.count_tokens(
        model=MODEL, system=[{"type": "text", "text": POLICY, "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "Question one?"}],
    )

    assert counted.input_tokens == usage.input_tokens + usage.cache_read_input_tokens == POLICY_TOKENS + 4
    assert ask(client, "x").usage.input_tokens == 1
