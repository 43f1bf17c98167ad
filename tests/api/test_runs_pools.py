"""POST /api/v1/runs/ with a pool of keys and fallback models (issue 22): what is stored, what the run
detail shows, and bad input refused with a 400 naming the field, nothing created."""

from typing import Any

import pytest

from apps.runs.models import Attempt, Run, RunKey
from tests.api.helpers import error_of
from tests.factories import MODEL, make_key

URL = "/api/v1/runs/"

pytestmark = pytest.mark.django_db


def payload(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "blocks": [{"uid": "a", "input": "hello"}, {"input": "world"}]}
    body.update(overrides)
    return body


@pytest.fixture
def three_keys(owner):
    return [make_key(owner, label=f"k{i}", secret=f"sk-ant-mock-pool{i}{i}{i}{i}") for i in range(3)]


def refused(response, field: str) -> list[str]:
    assert response.status_code == 400, response.content
    assert not Run.objects.exists() and not RunKey.objects.exists()
    return error_of(response)["fields"][field]


def test_a_run_takes_a_pool_of_keys_in_order(owner, three_keys, api):
    response = api(owner).post(URL, payload(keys=[k.pk for k in three_keys]), format="json")
    assert response.status_code == 201
    run = Run.objects.get()
    assert run.key == three_keys[0]
    assert list(run.pool.values_list("key_id", "position", "state")) == [
        (k.pk, i, "active") for i, k in enumerate(three_keys)
    ]
    assert [row["key"] for row in response.json()["keys"]] == [k.pk for k in three_keys]


def test_key_and_keys_together_make_one_pool_with_key_first(owner, three_keys, api):
    api(owner).post(URL, payload(key=three_keys[2].pk, keys=[three_keys[0].pk]), format="json")
    assert list(Run.objects.get().pool.values_list("key_id", flat=True)) == [
        three_keys[2].pk,
        three_keys[0].pk,
    ]


def test_a_single_key_is_a_pool_of_one(owner, offline_key, api):
    api(owner).post(URL, payload(key=offline_key.pk), format="json")
    assert list(Run.objects.get().pool.values_list("key_id", flat=True)) == [offline_key.pk]


def test_a_run_needs_a_key(owner, api):
    assert refused(api(owner).post(URL, payload(), format="json"), "key")


def test_another_users_key_in_the_pool_is_refused_as_unknown_naming_nothing_of_it(owner, outsider, api):
    theirs = make_key(owner)
    mine = make_key(outsider, label="mine")
    response = api(outsider).post(URL, payload(keys=[mine.pk, theirs.pk]), format="json")
    assert refused(response, "keys") == ["unknown key"]
    assert str(theirs.pk) not in response.content.decode() and theirs.label not in response.content.decode()


def test_the_same_key_twice_is_refused(owner, three_keys, api):
    response = api(owner).post(URL, payload(keys=[three_keys[0].pk, three_keys[0].pk]), format="json")
    assert refused(response, "keys") == ["the same key is named twice"]


def test_key_repeated_in_keys_is_refused(owner, three_keys, api):
    response = api(owner).post(URL, payload(key=three_keys[0].pk, keys=[three_keys[0].pk]), format="json")
    assert refused(response, "keys") == ["the same key is named twice"]


def test_fallback_models_are_stored_in_order(owner, offline_key, api):
    response = api(owner).post(
        URL,
        payload(key=offline_key.pk, fallback_models=["claude-sonnet-4-6", "claude-opus-4-6"]),
        format="json",
    )
    assert response.status_code == 201
    assert Run.objects.get().fallback_models == ["claude-sonnet-4-6", "claude-opus-4-6"]
    assert response.json()["fallback_models"] == ["claude-sonnet-4-6", "claude-opus-4-6"]


def test_an_unknown_fallback_model_is_refused(owner, offline_key, api):
    response = api(owner).post(
        URL, payload(key=offline_key.pk, fallback_models=["claude-nonesuch"]), format="json"
    )
    assert "unknown model 'claude-nonesuch'" in refused(response, "fallback_models")[0]


def test_a_fallback_model_named_twice_or_the_primary_is_refused(owner, offline_key, api):
    twice = api(owner).post(
        URL,
        payload(key=offline_key.pk, fallback_models=["claude-sonnet-4-6", "claude-sonnet-4-6"]),
        format="json",
    )
    assert "named twice" in refused(twice, "fallback_models")[0]
    primary = api(owner).post(URL, payload(key=offline_key.pk, fallback_models=[MODEL]), format="json")
    assert "named twice" in refused(primary, "fallback_models")[0]


def test_a_fallback_that_cannot_write_max_tokens_is_refused(owner, offline_key, api):
    # Sonnet 4.6 writes up to 128,000 tokens; Haiku 4.5 at most 64,000.
    response = api(owner).post(
        URL,
        payload(
            key=offline_key.pk,
            model="claude-sonnet-4-6",
            max_tokens=100_000,
            fallback_models=["claude-haiku-4-5"],
        ),
        format="json",
    )
    assert "at most 64000 output tokens" in refused(response, "fallback_models")[0]


def test_a_budget_reserves_at_the_most_expensive_model_of_the_list(owner, offline_key):
    from apps.runs.estimates import block_reservation
    from tests.factories import make_run

    run = make_run(
        owner, offline_key, ["x"], fallback_models=["claude-opus-4-6"], options={"max_cost_usd": "10"}
    )
    assert run.budget_spec.model == "claude-opus-4-6"
    opus = block_reservation(run.budget_spec, pack_size=1).fixed_usd
    haiku = block_reservation(run.call_spec, pack_size=1).fixed_usd
    assert opus > haiku


def test_run_detail_shows_spend_and_calls_per_key_and_per_model(owner, three_keys, api):
    from tests.factories import make_run

    run = make_run(owner, None, ["a", "b"], keys=three_keys[:2], fallback_models=["claude-sonnet-4-6"])
    blocks = list(run.blocks.order_by("block_index"))
    Attempt.objects.create(
        run=run, block=blocks[0], number=1, outcome="failed", model=MODEL, key=three_keys[0], http_status=404
    )
    Attempt.objects.create(
        run=run,
        block=blocks[0],
        number=2,
        outcome="succeeded",
        model="claude-sonnet-4-6",
        key=three_keys[1],
        cost_usd="0.25",
        cache_creation_input_tokens=5000,
    )
    body = api(owner).get(f"{URL}{run.pk}/").json()
    keys = {row["key"]: row for row in body["keys"]}
    assert (keys[three_keys[0].pk]["calls"], keys[three_keys[0].pk]["blocks_answered"]) == (1, 0)
    assert keys[three_keys[1].pk]["cost_usd"] == "0.25000000"
    assert keys[three_keys[1].pk]["cache_creation_input_tokens"] == 5000
    assert [(m["model"], m["calls"], m["blocks_answered"]) for m in body["models"]] == [
        (MODEL, 1, 0),
        ("claude-sonnet-4-6", 1, 1),
    ]
    assert "sk-ant" not in str(body)
