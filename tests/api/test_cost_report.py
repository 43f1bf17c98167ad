"""What the API says about money and caching: the create-time warning (create, detail, estimate), the
run's savings and cache hit rate, and GET runs/{a}/compare/{b}/ (both runs visible, else 404)."""

from decimal import Decimal

import pytest

from apps.runs.models import Block, BlockStatus
from tests.api.helpers import error_of, finish_block, record_attempt
from tests.factories import MODEL, make_key, make_run

pytestmark = pytest.mark.django_db

URL = "/api/v1/runs/"
SHORT_SYSTEM = "x" * 4800  # 1,200 tokens: claude-haiku-4-5 caches from 4,096


def create(api, user, key, **overrides):
    body = {"key": key.pk, "model": MODEL, "system_prompt": SHORT_SYSTEM,
            "options": {"cache": True}, "blocks": [{"uid": "a", "input": "hello"}]}
    body.update(overrides)
    return api(user).post(URL, body, format="json")


def compare_url(a, b) -> str:
    return f"{URL}{a.pk}/compare/{b.pk}/"


# --- the create-time warning --------------------------------------------------------------------------

def test_a_create_with_caching_on_and_a_short_prefix_is_answered_with_the_warning(owner, offline_key, api):
    response = create(api, owner, offline_key)
    assert response.status_code == 201
    [warning] = response.json()["warnings"]
    assert warning["code"] == "cache_prefix_too_short"
    assert (warning["prefix_tokens"], warning["min_cache_tokens"], warning["missing_tokens"]) == (
        1200, 4096, 2896)
    assert "about 2,896 tokens missing, so nothing will be cached" in warning["message"]


def test_the_warning_stays_on_the_run_and_in_its_detail(owner, offline_key, api):
    run_id = create(api, owner, offline_key).json()["id"]
    body = api(owner).get(f"{URL}{run_id}/").json()
    assert [w["code"] for w in body["warnings"]] == ["cache_prefix_too_short"]


def test_a_create_without_caching_has_no_warning(owner, offline_key, api):
    assert create(api, owner, offline_key, options={"cache": False}).json()["warnings"] == []


def test_the_estimate_says_what_the_create_would_be_warned_about(owner, offline_key, api):
    body = {"key": offline_key.pk, "model": MODEL, "system_prompt": SHORT_SYSTEM,
            "options": {"cache": True}, "blocks": [{"input": "hello"}]}
    response = api(owner).post(f"{URL}estimate/", body, format="json")
    assert response.status_code == 200
    assert [w["missing_tokens"] for w in response.json()["warnings"]] == [2896]


# --- savings and the hit rate on the run's detail -------------------------------------------------

def test_the_detail_shows_what_the_run_cost_and_saved(owner, offline_key, api):
    run = make_run(owner, offline_key, ["a", "b"], options={"cache": True})
    record_attempt(Block.objects.get(run=run, uid="b0"), request_id="req_1",
                   cache_creation_input_tokens=1_000_000, cost_usd=Decimal("1.25"))
    record_attempt(Block.objects.get(run=run, uid="b1"), request_id="req_2",
                   cache_read_input_tokens=1_000_000, cost_usd=Decimal("0.10"))
    body = api(owner).get(f"{URL}{run.pk}/").json()
    assert body["savings"] == {
        "cost_usd": "1.35000000", "without_caching_usd": "2.00000000",
        "without_caching_or_packing_usd": "2.00000000", "at_live_prices_usd": "1.35000000",
        "caching_saved_usd": "0.65000000", "packing_saved_usd": "0.00000000",
        "batch_saved_usd": "0.00000000", "packing_measured": True, "batch": False,
    }
    assert (body["cache"]["hit_rate"], body["cache"]["not_hitting"]) == (0.5, False)


def test_a_run_without_calls_has_no_hit_rate_and_saved_nothing(owner, offline_key, api):
    run = make_run(owner, offline_key, ["a"])
    body = api(owner).get(f"{URL}{run.pk}/").json()
    assert body["cache"]["hit_rate"] is None
    assert Decimal(body["savings"]["cost_usd"]) == Decimal(body["savings"]["without_caching_usd"]) == 0


# --- compare ------------------------------------------------------------------------------------------

@pytest.fixture
def pair(owner, offline_key):
    runs = []
    for outputs in (("one", "two", "three"), ("one", "TWO", "three")):
        run = make_run(owner, offline_key, ["x", "y", "z"])
        for index, output in enumerate(outputs):
            finish_block(run, f"b{index}", BlockStatus.SUCCEEDED, output=output)
        runs.append(run)
    return runs


def test_compare_reports_both_runs_and_the_uids_whose_outputs_differ(owner, pair, api):
    response = api(owner).get(compare_url(*pair))
    assert response.status_code == 200
    body = response.json()
    assert (body["a"]["id"], body["b"]["id"]) == (str(pair[0].pk), str(pair[1].pk))
    parity = body["parity"]
    assert (parity["compared"], parity["exact_matches"]) == (3, 2)
    assert parity["mismatches"] == {"count": 1, "uids": ["b1"], "truncated": False}
    assert set(body["a"]) >= {"cost_usd", "cost_per_block_usd", "tokens", "cache_hit_rate", "calls",
                              "attempts", "savings"}


def test_compare_bounds_the_uid_lists_by_the_limit_asked(owner, pair, api):
    mismatches = api(owner).get(compare_url(*pair), {"limit": 1}).json()["parity"]["mismatches"]
    assert mismatches["count"] == 1 and len(mismatches["uids"]) == 1


def test_compare_refuses_a_limit_out_of_range(owner, pair, api):
    response = api(owner).get(compare_url(*pair), {"limit": 0})
    assert response.status_code == 400
    assert "limit" in error_of(response)["fields"]


def test_compare_with_another_users_run_is_a_404(owner, outsider, pair, api):
    theirs = make_run(outsider, make_key(outsider), ["x"])
    assert api(owner).get(compare_url(pair[0], theirs)).status_code == 404
    assert api(owner).get(compare_url(theirs, pair[0])).status_code == 404


def test_an_outsider_cannot_compare_the_owners_runs(outsider, pair, api):
    assert api(outsider).get(compare_url(*pair)).status_code == 404


def test_staff_may_compare_any_two_runs(staff, pair, api):
    assert api(staff).get(compare_url(*pair)).status_code == 200


def test_compare_with_a_malformed_id_is_a_404_in_the_apis_shape(owner, pair, api):
    response = api(owner).get(f"{URL}{pair[0].pk}/compare/not-a-run/")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
