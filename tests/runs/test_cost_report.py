"""Cost reporting against the mock provider, through the real SDK: the compare report of a cache-off /
cache-on pair, the prefix-too-short warning (its estimate is what the provider counts), the cache hit
rate and the flag for caching that never hits.

claude-haiku-4-5 caches from 4,096 tokens; the mock counts 4 characters per token per text block."""

from pathlib import Path

import pytest
from django.conf import settings

from apps.runs.caching import CACHE_PREFIX_TOO_SHORT
from apps.runs.reporting.compare import runs_compare
from apps.runs.reporting.costs import (
    CACHE_NOT_HITTING,
    NO_HIT_AFTER_CALLS,
    run_cache_stats,
    run_savings,
    run_warnings,
)
from tests.factories import make_run
from tests.runs.helpers import serve_until_settled

pytestmark = pytest.mark.django_db(transaction=True)

RUBRIC = (Path(settings.BASE_DIR) / "samples" / "grading-rubric.md").read_text(encoding="utf-8")
TEMPLATE = "Grade this essay.\n\nEssay:\n{input}"  # "Grade this essay.\n\nEssay:\n" is 26 characters
ESSAYS = [f"essay {i}: rivers shape the towns along them in many ways" for i in range(12)]


def system_of(tokens: int) -> str:
    """A system prompt that makes, with TEMPLATE's stable part (7 tokens), a prefix of `tokens`."""
    return "x" * ((tokens - 7) * 4)


def run_of(owner, key, inputs=ESSAYS, **options):
    options.setdefault("prompt_template", TEMPLATE)
    options.setdefault("system_prompt", RUBRIC)
    return make_run(owner, key, inputs, **options)


# --- compare ------------------------------------------------------------------------------------------

def test_a_cache_off_and_a_cache_on_run_of_the_same_blocks_give_the_same_outputs(owner, mock_key):
    plain = serve_until_settled(run_of(owner, mock_key, name="uncached"))
    cached = serve_until_settled(run_of(owner, mock_key, name="cached", options={"cache": True}))
    parity = runs_compare(plain, cached).parity
    assert (parity.compared, parity.exact_matches, parity.mismatches.count) == (12, 12, 0)
    assert parity.identical


def test_the_compare_report_says_how_much_cheaper_the_cached_run_was_and_why(owner, mock_key):
    plain = serve_until_settled(run_of(owner, mock_key))
    cached = serve_until_settled(run_of(owner, mock_key, options={"cache": True}, parallelism=1))
    report = runs_compare(plain, cached)
    assert report.cost_ratio is not None and report.cost_ratio < 0.5
    assert (report.a.cache.hit_rate, report.a.tokens["cache_read"]) == (0.0, 0)
    assert report.b.tokens["cache_read"] > 0 and report.b.cache.hit_rate > 0.8
    assert (report.a.calls, report.a.attempts, report.b.calls) == (12, 12, 12)
    assert report.b.cost_per_block_usd == (report.b.cost_usd / 12).quantize(report.b.cost_per_block_usd)


def test_packed_and_cached_outputs_match_the_plain_runs_and_packing_is_counted_as_fewer_calls(
        owner, mock_key):
    plain = serve_until_settled(run_of(owner, mock_key))
    packed = serve_until_settled(run_of(owner, mock_key, options={"cache": True, "pack_size": 4},
                                        max_tokens=4000))
    report = runs_compare(plain, packed)
    assert report.parity.mismatches.count == 0 and report.parity.compared == 12
    assert (report.b.calls, report.b.attempts) == (3, 12)
    assert report.b.savings.packing_saved_usd > 0


# --- the prefix-too-short warning -------------------------------------------------------------------

def test_a_prefix_under_the_models_minimum_is_warned_at_create_with_the_tokens_missing(owner, mock_key):
    run = run_of(owner, mock_key, system_prompt=system_of(1200), options={"cache": True})
    [warning] = run.warnings
    assert warning["code"] == CACHE_PREFIX_TOO_SHORT
    assert (warning["prefix_tokens"], warning["min_cache_tokens"], warning["missing_tokens"]) == (
        1200, 4096, 2896)
    assert warning["message"].startswith("caching is on but the cacheable prefix is about 1,200 tokens")
    assert ("claude-haiku-4-5 caches from 4,096: about 2,896 tokens missing, so nothing will be cached"
            in warning["message"])


def test_the_estimate_is_what_the_provider_counts_one_token_short_caches_nothing(owner, mock_key):
    run = serve_until_settled(run_of(owner, mock_key, ESSAYS[:2], system_prompt=system_of(4095),
                                     options={"cache": True}, parallelism=1))
    assert run.warnings[0]["missing_tokens"] == 1
    assert (run.cache_creation_input_tokens, run.cache_read_input_tokens) == (0, 0)


def test_the_estimate_is_what_the_provider_counts_a_prefix_at_the_minimum_caches(owner, mock_key):
    run = serve_until_settled(run_of(owner, mock_key, ESSAYS[:2], system_prompt=system_of(4096),
                                     options={"cache": True}, parallelism=1))
    assert run.warnings == []
    assert (run.cache_creation_input_tokens, run.cache_read_input_tokens) == (4096, 4096)


def test_a_packed_runs_prefix_includes_the_pack_instructions(owner, mock_key):
    # 4,050 tokens alone are short; with the pack preamble (and the whole template) they are not.
    run = serve_until_settled(run_of(owner, mock_key, ESSAYS[:4], system_prompt=system_of(4050),
                                     options={"cache": True, "pack_size": 2}, parallelism=2,
                                     max_tokens=4000))
    assert run.warnings == []
    assert run.cache_read_input_tokens > 0
    assert run_of(owner, mock_key, ESSAYS[:4], system_prompt=system_of(4050),
                  options={"cache": True}).warnings[0]["missing_tokens"] == 46


def test_caching_off_is_never_warned_about_the_prefix(owner, mock_key):
    assert run_of(owner, mock_key, system_prompt="short").warnings == []


# --- hit rate and the no-hit flag -------------------------------------------------------------------

def test_the_hit_rate_is_the_share_of_the_cacheable_prefix_read_from_the_cache(owner, mock_key):
    run = serve_until_settled(run_of(owner, mock_key, options={"cache": True}, parallelism=1))
    stats = run_cache_stats(run)
    # Sequential calls: the first writes the prefix, the eleven others read it.
    assert (stats.written_tokens, stats.read_tokens, stats.missed_tokens) == (
        run.cache_creation_input_tokens, run.cache_read_input_tokens, 0)
    assert stats.hit_rate == pytest.approx(11 / 12)
    assert not stats.not_hitting


def test_a_run_without_caching_has_a_zero_hit_rate_over_its_estimated_prefix(owner, mock_key):
    run = serve_until_settled(run_of(owner, mock_key, ESSAYS[:3]))
    stats = run_cache_stats(run)
    assert stats.hit_rate == 0.0
    assert stats.missed_tokens == 3 * (-(-len(RUBRIC) // 4) + 7)  # the rubric, then the template


def test_caching_on_with_no_cache_read_after_its_first_calls_is_flagged(owner, mock_key):
    run = serve_until_settled(run_of(owner, mock_key, ESSAYS[:10], system_prompt=system_of(1200),
                                     options={"cache": True}, parallelism=1))
    stats = run_cache_stats(run)
    assert stats.not_hitting and stats.hit_rate == 0.0
    assert NO_HIT_AFTER_CALLS <= stats.calls_after_first <= 9  # sent once the first reply was recorded
    warnings = run_warnings(run)
    assert [w["code"] for w in warnings] == [CACHE_PREFIX_TOO_SHORT, CACHE_NOT_HITTING]
    assert f"no cache read after {stats.calls_after_first} calls" in warnings[1]["message"]


def test_a_few_calls_without_a_cache_read_are_not_flagged_yet(owner, mock_key):
    run = serve_until_settled(run_of(owner, mock_key, ESSAYS[:4], system_prompt=system_of(1200),
                                     options={"cache": True}, parallelism=1))
    assert not run_cache_stats(run).not_hitting


def test_a_run_whose_calls_read_the_cache_is_not_flagged(owner, mock_key):
    run = serve_until_settled(run_of(owner, mock_key, options={"cache": True}, parallelism=1))
    assert [w["code"] for w in run_warnings(run)] == []


# --- savings from real usage ------------------------------------------------------------------------

def test_a_live_runs_cost_at_live_prices_is_its_cost(owner, mock_key):
    run = serve_until_settled(run_of(owner, mock_key, ESSAYS[:3], options={"cache": True}))
    savings = run_savings(run)
    assert savings.live_usd == savings.cost_usd == run.cost_usd
    assert not savings.batch
