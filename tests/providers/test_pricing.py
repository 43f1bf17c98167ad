"""Prices from the catalog, per million tokens, for each kind of token a call is billed for."""

from decimal import Decimal

import pytest

from apps.providers.catalog import catalog, get_model
from apps.providers.usage import TokenUsage, cost_usd

MILLION = 1_000_000


@pytest.mark.parametrize(("model", "usage", "expected"), [
    # Haiku 4.5: $1 in, $1.25 5m write, $2 1h write, $0.10 read, $5 out.
    ("claude-haiku-4-5", TokenUsage(input_tokens=MILLION), "1.00"),
    ("claude-haiku-4-5", TokenUsage(output_tokens=MILLION), "5.00"),
    ("claude-haiku-4-5", TokenUsage(cache_creation_input_tokens=MILLION), "1.25"),
    ("claude-haiku-4-5", TokenUsage(cache_creation_input_tokens=MILLION,
                                    cache_creation_1h_tokens=MILLION), "2.00"),
    ("claude-haiku-4-5", TokenUsage(cache_read_input_tokens=MILLION), "0.10"),
    # Sonnet 4.6: $3 / $3.75 / $6 / $0.30 / $15.
    ("claude-sonnet-4-6", TokenUsage(input_tokens=2000, output_tokens=500), "0.0135"),
    ("claude-sonnet-4-6", TokenUsage(cache_creation_input_tokens=1000, cache_creation_1h_tokens=400,
                                     cache_read_input_tokens=10_000), "0.00765"),
    # Opus 4.5: $5 / $6.25 / $10 / $0.50 / $25; dated aliases price like their model.
    ("claude-opus-4-5-20251101", TokenUsage(input_tokens=100, output_tokens=100), "0.003"),
])
def test_a_call_costs_its_tokens_at_the_models_prices(model, usage, expected):
    assert cost_usd(model, usage) == Decimal(expected)


def test_an_unknown_model_costs_nothing_rather_than_a_guess():
    assert cost_usd("claude-imaginary-9", TokenUsage(input_tokens=MILLION)) == 0


def test_cache_prices_keep_the_documented_multipliers_for_every_model():
    for model_id in catalog().ids():
        info = get_model(model_id)
        assert info.cache_write_5m == info.input * Decimal("1.25"), model_id
        assert info.cache_write_1h == info.input * 2, model_id
        assert info.cache_read == info.input / 10, model_id
