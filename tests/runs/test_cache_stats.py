"""The cache hit rate from recorded usage: read / (read + written + missed) of the cacheable prefix.

The calls the provider makes are in test_cost_report.py; here, usage recorded by hand."""

import pytest

from apps.runs.models import Block
from apps.runs.reporting.costs import run_cache_stats
from tests.api.helpers import record_attempt
from tests.factories import make_run

pytestmark = pytest.mark.django_db

SYSTEM = "s" * 4000  # 1,000 tokens at 4 characters per token


@pytest.fixture
def run(owner, offline_key):
    return make_run(owner, offline_key, ["a", "b", "c", "d"], system_prompt=SYSTEM,
                    options={"cache": True})


def call(run, uid: str, request_id: str, **usage: int) -> None:
    record_attempt(Block.objects.get(run=run, uid=uid), request_id=request_id, **usage)


def test_a_run_whose_cache_works_reads_its_rate_from_the_usage(run):
    call(run, "b0", "req_1", cache_creation_input_tokens=1000, input_tokens=5)
    for n in range(1, 4):
        call(run, f"b{n}", f"req_{n + 1}", cache_read_input_tokens=1000, input_tokens=5)
    stats = run_cache_stats(run)
    assert (stats.read_tokens, stats.written_tokens, stats.missed_tokens) == (3000, 1000, 0)
    assert stats.hit_rate == 0.75


def test_calls_that_neither_wrote_nor_read_count_their_estimated_prefix_as_missed(run):
    call(run, "b0", "req_1", cache_read_input_tokens=1000, input_tokens=5)
    call(run, "b1", "req_2", input_tokens=1005)
    stats = run_cache_stats(run)
    assert stats.missed_tokens == 1000
    assert stats.hit_rate == 0.5


def test_calls_without_an_answer_or_without_usage_are_not_counted(run):
    call(run, "b0", "")  # no answer: no request id
    call(run, "b1", "req_1")  # answered with an error: no usage
    stats = run_cache_stats(run)
    assert (stats.calls, stats.hit_rate) == (1, None)


def test_a_run_with_nothing_before_its_blocks_has_no_hit_rate(owner, offline_key):
    run = make_run(owner, offline_key, ["a"], options={"cache": True})
    call(run, "b0", "req_1", input_tokens=5)
    assert run_cache_stats(run).hit_rate is None
