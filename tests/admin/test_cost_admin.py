"""Money and caching in the operator's console: a run's savings, its cache hit rate, its warnings, and
the runs whose caching does nothing, found from the list."""

from decimal import Decimal

import pytest
from django.urls import reverse

from apps.runs.models import Block
from tests.api.helpers import record_attempt
from tests.factories import make_key, make_run
from tests.runs.helpers import serve_until_settled

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = reverse("admin:runs_run_changelist")


def page(operator, run) -> str:
    return operator.get(reverse("admin:runs_run_change", args=[run.pk])).content.decode()


def test_a_runs_page_shows_what_caching_saved(operator, owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b"], options={"cache": True})
    record_attempt(Block.objects.get(run=run, uid="b0"), request_id="req_1",
                   cache_creation_input_tokens=1_000_000, cost_usd=Decimal("1.25"))
    record_attempt(Block.objects.get(run=run, uid="b1"), request_id="req_2",
                   cache_read_input_tokens=1_000_000, cost_usd=Decimal("0.10"))
    html = page(operator, run)
    assert "<td>without caching</td><td>$2.00</td><td>caching saved $0.6500</td>" in html
    assert "50.0% (1,000,000 of 2,000,000 cacheable tokens read; caching on)" in html


def test_a_runs_page_shows_the_warning_it_was_created_with(operator, owner, offline_key):
    run = make_run(owner, offline_key, ["a"], system_prompt="short", options={"cache": True})
    html = page(operator, run)
    assert "<strong>cache_prefix_too_short</strong>: caching is on but the cacheable prefix" in html


def test_the_list_marks_a_run_created_with_a_warning(operator, owner, offline_key):
    make_run(owner, offline_key, ["a"], system_prompt="short", options={"cache": True})
    assert "⚠ cache_prefix_too_short" in operator.get(RUNS).content.decode()


@pytest.fixture
def not_hitting(owner, mock):
    key = make_key(owner, base_url=mock.base_url, label="mock")
    return serve_until_settled(make_run(owner, key, [f"x{i}" for i in range(10)], parallelism=1,
                                        system_prompt="too short to cache", options={"cache": True},
                                        name="never hits"))


def test_a_run_whose_caching_never_hits_is_flagged_on_its_page(operator, not_hitting):
    html = page(operator, not_hitting)
    assert "caching on, but no cache read after" in html
    assert "<strong>cache_not_hitting</strong>" in html


def test_the_list_finds_the_runs_whose_caching_does_not_hit(operator, owner, offline_key, not_hitting):
    fine = make_run(owner, offline_key, ["a"], name="plain run")
    html = operator.get(RUNS, {"caching": "not_hitting"}).content.decode()
    assert "never hits" in html and fine.name not in html
