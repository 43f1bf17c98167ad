"""One error shape for every 4xx: {"error": {"code", "message", "fields"?, "line"?, "retry_after"?}}."""

import pytest
from rest_framework.exceptions import ValidationError

from config.api.errors import flatten_errors
from tests.api.helpers import error_of


def test_a_validation_error_names_each_field_and_summarises_the_first(owner, api):
    response = api(owner).post("/api/v1/runs/", {"model": "m"}, format="json")
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert set(error["fields"]) == {"key", "blocks"}
    assert error["message"] == "key: This field is required. (and 1 more)"
    assert "line" not in error


def test_a_missing_token_is_a_401(api):
    response = api().get("/api/v1/runs/")
    assert response.status_code == 401
    assert error_of(response) == {"code": "not_authenticated",
                                  "message": "Authentication credentials were not provided."}


def test_a_wrong_token_is_a_401(db, api):
    client = api()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    response = client.get("/api/v1/runs/")
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"


def test_an_unsupported_method_is_a_405(owner, api):
    response = api(owner).put("/api/v1/runs/", {}, format="json")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_an_unacceptable_accept_header_is_a_406_in_json(owner, api):
    response = api(owner).get("/api/v1/runs/", HTTP_ACCEPT="application/xml")
    assert response.status_code == 406
    assert response.json()["error"]["code"] == "not_acceptable"


def test_nested_errors_flatten_to_dotted_paths():
    detail = ValidationError({
        "options": {"pack_size": ["too big"]},
        "blocks": [{}, {"input": ["required"]}, {"non_field_errors": ["not an object"]}],
    }).detail
    assert flatten_errors(detail) == {"options.pack_size": ["too big"], "blocks.1.input": ["required"],
                                      "blocks.2": ["not an object"]}


def test_errors_that_are_not_about_a_field_are_listed_as_non_field_errors():
    assert flatten_errors(ValidationError(["wrong"]).detail) == {"non_field_errors": ["wrong"]}


# --- throttling ------------------------------------------------------------------------------------

@pytest.fixture
def rates(settings):
    def set_rates(**rates: str) -> None:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                                   "DEFAULT_THROTTLE_RATES": {"uploads": "1000/min", "writes": "1000/min",
                                                              **rates}}
    return set_rates


def test_creating_runs_too_fast_is_a_429_with_a_retry_after(owner, offline_key, api, rates):
    rates(uploads="2/min")
    client = api(owner)
    body = {"key": offline_key.pk, "model": "claude-haiku-4-5", "blocks": [{"input": "x"}]}
    statuses = [client.post("/api/v1/runs/", body, format="json").status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    response = client.post("/api/v1/runs/", body, format="json")
    error = error_of(response)
    assert error["code"] == "throttled"
    assert 0 < error["retry_after"] <= 60
    assert response["Retry-After"] == str(error["retry_after"])


def test_run_actions_are_throttled_as_writes(owner, run, api, rates):
    rates(writes="1/min")
    client = api(owner)
    client.post(f"/api/v1/runs/{run.pk}/resume/")
    assert client.post(f"/api/v1/runs/{run.pk}/resume/").status_code == 429


def test_throttle_counts_are_shared_by_every_web_process(owner, run, api, rates):
    """They live in Redis (Django's cache), not in one process's memory: Redis itself holds the
    user's allowance, where every web process reads it."""
    import redis
    from django.conf import settings

    rates(writes="1/min")
    api(owner).post(f"/api/v1/runs/{run.pk}/resume/")
    cache = settings.CACHES["default"]
    shared = redis.Redis.from_url(cache["LOCATION"])
    assert shared.exists(f"{cache['KEY_PREFIX']}:1:throttle_writes_{owner.pk}")


def test_reads_are_never_throttled(owner, run, api, rates):
    rates(uploads="1/min", writes="1/min")
    client = api(owner)
    assert {client.get("/api/v1/runs/").status_code for _ in range(5)} == {200}


def test_each_user_has_their_own_allowance(owner, outsider, run, api, rates):
    rates(writes="1/min")
    api(outsider).post(f"/api/v1/runs/{run.pk}/cancel/")
    assert api(owner).post(f"/api/v1/runs/{run.pk}/cancel/").status_code == 200


def test_an_unknown_api_url_is_a_404_in_the_shared_shape(client):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}
