"""run_savings: what caching and packing saved, from recorded usage at the catalog's prices.

Prices of claude-haiku-4-5 (per million tokens): input $1, 5m cache write $1.25, cache read $0.10,
output $5."""

from decimal import Decimal

import pytest

from apps.runs.models import Block
from apps.runs.reporting.costs import run_savings
from tests.api.helpers import record_attempt
from tests.factories import make_run

pytestmark = pytest.mark.django_db

MILLION = 1_000_000


@pytest.fixture
def run(owner, offline_key):
    return make_run(owner, offline_key, ["a", "b", "c", "d"])


def call(run, uids: list[str], request_id: str, *, written: int = 0, read: int = 0, input: int = 0,
         output: int = 0, cost: str = "0") -> None:
    """One call for these blocks, its usage shared among them as the engine shares it."""
    n = len(uids)
    for uid in uids:
        record_attempt(Block.objects.get(run=run, uid=uid), request_id=request_id,
                       cache_creation_input_tokens=written // n, cache_read_input_tokens=read // n,
                       input_tokens=input // n, output_tokens=output // n,
                       cost_usd=Decimal(cost) / n)


def test_caching_saved_the_difference_between_cached_and_plain_input_prices(run):
    # Two single-block calls: one writes a 1M-token prefix ($1.25), one reads it ($0.10).
    call(run, ["b0"], "req_1", written=MILLION, cost="1.25")
    call(run, ["b1"], "req_2", read=MILLION, cost="0.10")
    savings = run_savings(run)
    assert (savings.cost_usd, savings.uncached_usd) == (Decimal("1.35"), Decimal("2"))
    assert savings.caching_saved_usd == Decimal("0.65")
    assert savings.packing_saved_usd == 0


def test_packing_saved_the_prefix_every_other_block_of_a_pack_would_have_carried(run):
    # One call for four blocks, its 1M-token prefix read from the cache: unpacked, four calls would
    # each have sent the prefix as plain input.
    call(run, ["b0", "b1", "b2", "b3"], "req_1", read=MILLION, input=400_000, output=200_000,
         cost="1.5")
    savings = run_savings(run)
    assert savings.uncached_usd == Decimal("1.4") + Decimal("1")  # 1.4M input + 0.2M output
    assert savings.unpacked_uncached_usd == Decimal("5.4")  # + 3 more copies of the prefix
    assert savings.packing_saved_usd == Decimal("3")
    assert savings.saved_usd == Decimal("3.9")


def test_a_run_that_cached_nothing_says_its_packing_saving_is_not_measured(run):
    call(run, ["b0", "b1"], "req_1", input=MILLION, cost="1")
    savings = run_savings(run)
    assert not savings.packing_measured
    assert savings.saved_usd == 0


def test_attempts_that_got_no_answer_are_not_counted_as_one_packed_call(run):
    call(run, ["b0"], "", read=0, cost="0")
    call(run, ["b1"], "", read=0, cost="0")
    call(run, ["b2"], "req_1", read=MILLION, cost="0.10")
    assert run_savings(run).packing_saved_usd == 0


# --- batch mode: recorded at batch prices (half), "at live prices" at standard ones ------------------

@pytest.fixture
def batch_run(owner, offline_key):
    return make_run(owner, offline_key, ["a", "b"], mode="batch", options={"cache": True})


def test_a_live_runs_cost_at_live_prices_is_its_cost(run):
    call(run, ["b0"], "req_1", input=MILLION, cost="1")
    savings = run_savings(run)
    assert (savings.batch, savings.live_usd, savings.batch_saved_usd) == (False, Decimal("1"), 0)


def test_a_batch_runs_usage_at_live_prices_is_priced_at_standard_rates(batch_run):
    call(batch_run, ["b0"], "req_1", input=MILLION, output=200_000, cost="1")  # half of $1 + $1
    savings = run_savings(batch_run)
    assert (savings.batch, savings.cost_usd, savings.live_usd) == (True, Decimal("1"), Decimal("2"))
    assert savings.batch_saved_usd == Decimal("1")


def test_a_batch_runs_savings_from_caching_are_at_batch_prices(batch_run):
    call(batch_run, ["b0"], "req_1", written=MILLION, cost="0.625")
    call(batch_run, ["b1"], "req_2", read=MILLION, cost="0.05")
    savings = run_savings(batch_run)
    assert savings.uncached_usd == Decimal("1")  # 2M tokens of plain input at half price
    assert savings.caching_saved_usd == Decimal("0.325")
    assert savings.live_usd == Decimal("1.35")


def test_cache_writes_of_a_one_hour_ttl_batch_run_are_priced_at_the_one_hour_rate(owner, offline_key):
    run = make_run(owner, offline_key, ["a"], mode="batch",
                   options={"cache": True, "cache_ttl": "1h"})
    call(run, ["b0"], "req_1", written=MILLION, cost="1")
    assert run_savings(run).live_usd == Decimal("2")
