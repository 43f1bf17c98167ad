"""POST /api/v1/runs/ with blocks inline (JSON): every field checked, with a message naming it, and
nothing created on any error."""

from typing import Any

import pytest

from apps.keys.models import ProviderKey
from apps.runs.models import Block, Run
from tests.api.helpers import error_of
from tests.factories import MODEL, SECRET, make_key

URL = "/api/v1/runs/"


def payload(key, /, **overrides: Any) -> dict[str, Any]:
    body = {"key": key.pk, "model": MODEL,
            "blocks": [{"uid": "a", "input": "hello"}, {"input": "world"}]}
    body.update(overrides)
    return body


def test_a_run_is_created_with_its_blocks_inline(owner, offline_key, api):
    response = api(owner).post(URL, payload(offline_key), format="json")
    assert response.status_code == 201
    run = Run.objects.get()
    assert response.json()["id"] == str(run.pk)
    assert list(run.blocks.order_by("block_index").values_list("uid", "input")) == [
        ("a", "hello"), ("line-2", "world")
    ]


def test_a_created_run_belongs_to_the_requester_and_uses_their_key(owner, offline_key, api):
    api(owner).post(URL, payload(offline_key), format="json")
    run = Run.objects.get()
    assert (run.owner, run.key) == (owner, offline_key)


def test_a_created_run_is_answered_with_its_counts_and_version_stamp(owner, offline_key, api):
    body = api(owner).post(URL, payload(offline_key), format="json").json()
    assert body["status"] == "queued"
    assert body["counts"] == {"total": 2, "succeeded": 0, "failed": 0, "canceled": 0, "remaining": 2}
    assert body["block_statuses"]["pending"] == 2
    assert body["current_pass"] == 1
    assert body["pipeline_version"] and body["prompt_version"]


def test_every_setting_given_is_stored_on_the_run(owner, offline_key, api):
    api(owner).post(URL, payload(
        offline_key, name="nightly", system_prompt="Be brief.", prompt_template="Summarise: {input}",
        max_tokens=64, max_attempts=5, parallelism=4, temperature=0.5,
        options={"cache": True, "cache_ttl": "1h", "pack_size": 10, "stream": True, "max_cost_usd": "2.5"},
    ), format="json")
    run = Run.objects.get()
    assert (run.name, run.system_prompt, run.prompt_template) == ("nightly", "Be brief.",
                                                                  "Summarise: {input}")
    assert (run.max_tokens, run.max_attempts, run.parallelism, run.temperature) == (64, 5, 4, 0.5)
    assert run.options == {"cache": True, "cache_ttl": "1h", "pack_size": 10, "stream": True,
                           "max_cost_usd": "2.5000"}


def test_omitted_options_are_stored_with_their_defaults(owner, offline_key, api):
    api(owner).post(URL, payload(offline_key), format="json")
    assert Run.objects.get().options == {"cache": False, "cache_ttl": "5m", "pack_size": 1,
                                         "stream": False}


def test_creating_a_run_schedules_its_first_drain_after_commit(owner, offline_key, api,
                                                               django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        api(owner).post(URL, payload(offline_key), format="json")
    assert len(callbacks) == 1


@pytest.mark.parametrize(("overrides", "field"), [
    ({"key": "main"}, "key"),
    ({"key": 0}, "key"),
    ({"key": 2**70}, "key"),
    ({"model": None}, "model"),
    ({"model": "gpt-4o"}, "model"),
    ({"name": "n" * 201}, "name"),
    ({"system_prompt": ["not", "text"]}, "system_prompt"),
    ({"prompt_template": "no placeholder"}, "prompt_template"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 128_001}, "max_tokens"),
    ({"max_tokens": 100_000}, "max_tokens"),  # above claude-haiku-4-5's 64,000
    ({"prallelism": 4}, "prallelism"),
    ({"model": 5}, "model"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"max_attempts": 21}, "max_attempts"),
    ({"parallelism": 0}, "parallelism"),
    ({"parallelism": 1001}, "parallelism"),
    ({"temperature": 1.5}, "temperature"),
    ({"temperature": "warm"}, "temperature"),
    ({"options": "fast"}, "options"),
    ({"options": {"cache": "maybe"}}, "options.cache"),
    ({"options": {"cache_ttl": "2h"}}, "options.cache_ttl"),
    ({"options": {"pack_size": 0}}, "options.pack_size"),
    ({"options": {"pack_size": 51}}, "options.pack_size"),
    ({"options": {"stream": "sometimes"}}, "options.stream"),
    ({"options": {"max_cost_usd": "-1"}}, "options.max_cost_usd"),
    ({"options": {"colour": "blue"}}, "options.colour"),
    ({"blocks": []}, "blocks"),
    ({"blocks": "hello"}, "blocks"),
    ({"blocks": ["hello"]}, "blocks.0"),
    ({"blocks": [{"uid": "a"}]}, "blocks.0.input"),
    ({"blocks": [{"input": ""}]}, "blocks.0.input"),
    ({"blocks": [{"input": "ok"}, {"input": "   "}]}, "blocks.1.input"),
    ({"blocks": [{"input": "ok", "uid": "u" * 201}]}, "blocks.0.uid"),
    ({"blocks": [{"input": "ok", "uid": "a"}, {"input": "ok", "uid": "a"}]}, "blocks.1.uid"),
    ({"blocks": [{"input": "ok", "colour": "blue"}]}, "blocks.0.colour"),
    ({"blocks": [{"input": "nul \u0000 inside"}]}, "blocks.0.input"),
    ({"blocks": [{"input": 5}]}, "blocks.0.input"),
    ({"blocks": [{"input": "ok", "uid": 1.5}]}, "blocks.0.uid"),
    ({"blocks": [{"input": "ok", "uid": "a\rb"}]}, "blocks.0.uid"),
    ({"blocks": [{"input": "ok", "uid": "a\nb"}]}, "blocks.0.uid"),
    ({"blocks": [{"input": "ok", "uid": "a\x7fb"}]}, "blocks.0.uid"),
], ids=lambda value: None if isinstance(value, dict) else value)
def test_bad_input_is_a_400_naming_the_field_and_creates_nothing(owner, offline_key, api, overrides, field):
    body = payload(offline_key, **overrides)
    if overrides.get("model", "") is None:
        del body["model"]
    response = api(owner).post(URL, body, format="json")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert field in error["fields"], error
    assert field.split(".")[0] in error["message"] or field.startswith("blocks")
    assert not Run.objects.exists() and not Block.objects.exists()


def test_max_tokens_above_the_models_output_limit_says_what_the_limit_is(owner, offline_key, api):
    response = api(owner).post(URL, payload(offline_key, max_tokens=100_000), format="json")
    assert error_of(response)["fields"]["max_tokens"] == [
        "100000 is more than claude-haiku-4-5 can write: at most 64000 output tokens"
    ]


def test_max_tokens_at_the_models_output_limit_is_accepted(owner, offline_key, api):
    response = api(owner).post(URL, payload(offline_key, max_tokens=64_000), format="json")
    assert response.status_code == 201


def test_a_misspelt_setting_is_refused_rather_than_ignored(owner, offline_key, api):
    response = api(owner).post(URL, payload(offline_key, prallelism=4), format="json")
    assert error_of(response)["fields"] == {"prallelism": ["Unknown field."]}


def test_an_inline_input_that_is_a_number_is_refused_as_in_a_jsonl_file(owner, offline_key, api):
    response = api(owner).post(URL, payload(offline_key, blocks=[{"input": 5}]), format="json")
    assert error_of(response)["fields"] == {"blocks.0.input": ["Must be a string."]}


def test_an_integer_uid_is_read_as_its_digits_as_in_a_jsonl_file(owner, offline_key, api):
    api(owner).post(URL, payload(offline_key, blocks=[{"uid": 7, "input": "x"}]), format="json")
    assert list(Block.objects.values_list("uid", flat=True)) == ["7"]


def test_a_uid_with_a_carriage_return_is_refused_naming_the_block(owner, offline_key, api):
    blocks = [{"input": "ok"}, {"uid": "essay\r7", "input": "ok"}]
    response = api(owner).post(URL, payload(offline_key, blocks=blocks), format="json")
    message = error_of(response)["fields"]["blocks.1.uid"][0]
    assert "control character U+000D" in message


def test_a_missing_required_field_is_named(owner, offline_key, api):
    response = api(owner).post(URL, {"blocks": [{"input": "x"}]}, format="json")
    assert set(error_of(response)["fields"]) == {"key", "model"}


def test_a_body_that_is_not_an_object_is_a_400(owner, api):
    response = api(owner).post(URL, [1, 2, 3], format="json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "validation_error"


def test_malformed_json_is_a_400_parse_error(owner, api):
    response = api(owner).post(URL, b'{"key": ', content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "parse_error"


def test_an_unknown_key_id_is_a_field_error_on_key(owner, offline_key, api):
    response = api(owner).post(URL, payload(offline_key, key=offline_key.pk + 1000), format="json")
    assert response.status_code == 400
    assert error_of(response)["fields"] == {"key": ["unknown key"]}


def test_another_users_key_is_refused_exactly_like_an_unknown_one(owner, outsider, api):
    theirs = make_key(owner)
    response = api(outsider).post(URL, payload(theirs), format="json")
    assert response.status_code == 400
    assert error_of(response)["fields"] == {"key": ["unknown key"]}
    assert not Run.objects.exists()


def test_staff_cannot_spend_another_users_key_either(owner, staff, offline_key, api):
    response = api(staff).post(URL, payload(offline_key), format="json")
    assert error_of(response)["fields"] == {"key": ["unknown key"]}


def test_a_key_whose_validation_failed_is_refused_with_a_409_giving_the_reason(owner, offline_key, api):
    ProviderKey.objects.filter(pk=offline_key.pk).update(
        is_valid=False, validation_error="authentication_error: invalid x-api-key")
    response = api(owner).post(URL, payload(offline_key), format="json")
    assert response.status_code == 409
    assert error_of(response) == {"code": "key_invalid",
                                  "message": "key is invalid: authentication_error: invalid x-api-key"}
    assert not Run.objects.exists() and not Block.objects.exists()


def test_a_key_not_validated_yet_is_accepted(owner, offline_key, api):
    ProviderKey.objects.filter(pk=offline_key.pk).update(is_valid=None)
    response = api(owner).post(URL, payload(offline_key), format="json")
    assert response.status_code == 201


def test_a_create_never_shows_the_keys_secret(owner, offline_key, api):
    response = api(owner).post(URL, payload(offline_key), format="json")
    assert SECRET not in response.content.decode()
    assert response.json()["key"] == offline_key.pk


def test_an_inline_body_over_its_byte_limit_is_a_413(owner, offline_key, api, settings):
    settings.MAX_JSON_BODY_BYTES = 200
    response = api(owner).post(URL, payload(offline_key, blocks=[{"input": "x" * 300}]), format="json")
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    assert "JSONL" in error_of(response)["message"]


def test_more_inline_blocks_than_the_limit_is_a_413(owner, offline_key, api, settings):
    settings.MAX_UPLOAD_BLOCKS = 2
    response = api(owner).post(URL, payload(offline_key, blocks=[{"input": "x"}] * 3), format="json")
    assert response.status_code == 413
    assert not Run.objects.exists()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/xml"])
def test_an_unsupported_content_type_is_a_415(owner, api, content_type):
    response = api(owner).post(URL, "key=1", content_type=content_type)
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


# --- Idempotency-Key ---------------------------------------------------------------------------------

def test_a_retried_create_with_the_same_idempotency_key_returns_the_first_run(owner, offline_key, api):
    client = api(owner)
    first = client.post(URL, payload(offline_key), format="json", HTTP_IDEMPOTENCY_KEY="batch-7")
    again = client.post(URL, payload(offline_key), format="json", HTTP_IDEMPOTENCY_KEY="batch-7")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Run.objects.count() == 1


def test_a_retry_with_the_same_body_in_another_key_order_returns_the_first_run(owner, offline_key, api):
    client = api(owner)
    body = payload(offline_key, name="nightly")
    first = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="batch-7")
    reordered = dict(reversed(list(body.items())))
    again = client.post(URL, reordered, format="json", HTTP_IDEMPOTENCY_KEY="batch-7")
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])


@pytest.mark.parametrize("other_body", [
    {"name": "other"},
    {"blocks": [{"uid": "a", "input": "hello"}]},
    {"garbage": True},
], ids=["another-setting", "fewer-blocks", "garbage"])
def test_an_idempotency_key_reused_with_a_different_body_is_a_422_naming_the_key(
    owner, offline_key, api, other_body,
):
    client = api(owner)
    client.post(URL, payload(offline_key), format="json", HTTP_IDEMPOTENCY_KEY="batch-7")
    body = other_body if "garbage" in other_body else payload(offline_key, **other_body)
    response = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="batch-7")
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "idempotency_key_reused"
    assert "'batch-7'" in error["message"]
    assert Run.objects.count() == 1


def test_different_idempotency_keys_create_different_runs(owner, offline_key, api):
    client = api(owner)
    client.post(URL, payload(offline_key), format="json", HTTP_IDEMPOTENCY_KEY="batch-7")
    response = client.post(URL, payload(offline_key), format="json", HTTP_IDEMPOTENCY_KEY="batch-8")
    assert response.status_code == 201
    assert Run.objects.count() == 2


def test_idempotency_keys_belong_to_each_user(owner, outsider, offline_key, api):
    api(owner).post(URL, payload(offline_key), format="json", HTTP_IDEMPOTENCY_KEY="batch-7")
    response = api(outsider).post(URL, payload(make_key(outsider)), format="json",
                                  HTTP_IDEMPOTENCY_KEY="batch-7")
    assert response.status_code == 201
    assert Run.objects.filter(owner=outsider).count() == 1


def test_a_concurrent_duplicate_is_answered_with_the_winners_run_and_200(owner, offline_key, api,
                                                                         monkeypatch):
    first = api(owner).post(URL, payload(offline_key), format="json", HTTP_IDEMPOTENCY_KEY="batch-7")
    # As if the other request committed between this one's lookup and its insert.
    monkeypatch.setattr("apps.runs.api.run_for_repeated_request", lambda **kwargs: None)
    again = api(owner).post(URL, payload(offline_key), format="json", HTTP_IDEMPOTENCY_KEY="batch-7")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize("value", ["k" * 201, "   ", "tab\tinside"], ids=["too-long", "blank", "control"])
def test_a_malformed_idempotency_key_is_a_400_naming_the_header(owner, offline_key, api, value):
    response = api(owner).post(URL, payload(offline_key), format="json", HTTP_IDEMPOTENCY_KEY=value)
    assert response.status_code == 400
    assert "Idempotency-Key" in error_of(response)["fields"]
    assert not Run.objects.exists()


def test_json_nested_too_deeply_to_parse_is_a_400(owner, api):
    response = api(owner).post(URL, "[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "parse_error"


def test_a_budget_below_one_block_is_a_400_naming_the_smallest_budget_that_works(owner, offline_key, api):
    body = payload(offline_key, options={"max_cost_usd": "0.0001"})
    response = api(owner).post(URL, body, format="json")
    assert response.status_code == 400
    error = error_of(response)
    assert "options.max_cost_usd" in error["fields"]
    assert "largest block could cost up to $" in error["message"]
    assert "set a budget of at least $" in error["message"]
    assert not Run.objects.exists() and not Block.objects.exists()


def test_the_estimate_refuses_a_budget_below_one_block_as_the_create_does(owner, offline_key, api):
    body = payload(offline_key, options={"max_cost_usd": "0.0001"})
    estimate = api(owner).post(f"{URL}estimate/", body, format="json")
    create = api(owner).post(URL, body, format="json")
    assert (estimate.status_code, create.status_code) == (400, 400)
    assert error_of(estimate)["message"] == error_of(create)["message"]
