"""GET /api/v1/runs/{id}/blocks/ (cursor pages in block order, filters) and a block with its
attempts."""

from base64 import b64encode

import pytest

from apps.runs.models import AttemptOutcome, BlockStatus
from tests.api.helpers import error_of, finish_block, record_attempt
from tests.factories import make_run


def blocks_url(run) -> str:
    return f"/api/v1/runs/{run.pk}/blocks/"


def uids(response) -> list[str]:
    return [block["uid"] for block in response.json()["results"]]


def test_the_owner_lists_a_runs_blocks_in_order(owner, run, api):
    response = api(owner).get(blocks_url(run))
    assert response.status_code == 200
    assert uids(response) == ["b0", "b1", "b2"]


def test_staff_list_any_runs_blocks(staff, run, api):
    assert uids(api(staff).get(blocks_url(run))) == ["b0", "b1", "b2"]


def test_following_the_cursor_visits_every_block_once_in_order(owner, offline_key, api):
    run = make_run(owner, offline_key, [f"text {i}" for i in range(7)])
    client, seen, url = api(owner), [], blocks_url(run) + "?page_size=3"
    while url:
        body = client.get(url).json()
        seen += [block["uid"] for block in body["results"]]
        url = body["next"]
    assert seen == [f"b{i}" for i in range(7)]


def test_limit_sets_the_length_of_a_page_of_blocks(owner, offline_key, api):
    run = make_run(owner, offline_key, [f"text {i}" for i in range(7)])
    assert uids(api(owner).get(blocks_url(run) + "?limit=3")) == ["b0", "b1", "b2"]


def test_pages_stay_stable_when_earlier_blocks_change_status(owner, offline_key, api):
    run = make_run(owner, offline_key, [f"text {i}" for i in range(4)])
    client = api(owner)
    first = client.get(blocks_url(run) + "?page_size=2").json()
    finish_block(run, "b0", BlockStatus.SUCCEEDED, output="done")
    assert uids(client.get(first["next"])) == ["b2", "b3"]


def test_blocks_filter_by_status(owner, run, api):
    finish_block(run, "b1", BlockStatus.FAILED, error_code="overloaded")
    assert uids(api(owner).get(blocks_url(run), {"status": "failed"})) == ["b1"]


def test_blocks_filter_by_error_code(owner, run, api):
    finish_block(run, "b0", BlockStatus.FAILED, error_code="invalid_request")
    finish_block(run, "b1", BlockStatus.FAILED, error_code="overloaded")
    assert uids(api(owner).get(blocks_url(run), {"error_code": "overloaded"})) == ["b1"]


def test_a_bad_block_filter_is_a_400_naming_it(owner, run, api):
    response = api(owner).get(blocks_url(run), {"status": "sleeping"})
    assert response.status_code == 400
    assert "status" in error_of(response)["fields"]


@pytest.mark.parametrize("cursor", ["garbage!", b64encode(b"p=abc").decode(), b64encode(b"o=-1").decode()],
                         ids=["not-base64", "forged-position", "negative-offset"])
def test_a_forged_cursor_is_a_404_in_the_error_shape(owner, run, api, cursor):
    response = api(owner).get(blocks_url(run), {"cursor": cursor})
    assert response.status_code == 404
    assert error_of(response)["message"] == "Invalid cursor"


def test_a_listed_block_shows_its_state_without_its_text(owner, run, api):
    finish_block(run, "b0", BlockStatus.FAILED, error_code="overloaded", error_message="busy")
    block = api(owner).get(blocks_url(run)).json()["results"][0]
    assert (block["status"], block["error_code"], block["error_message"]) == ("failed", "overloaded", "busy")
    assert "input" not in block and "output" not in block


# --- one block -------------------------------------------------------------------------------------

def test_a_block_is_shown_with_its_input_output_and_attempts(owner, run, api):
    block = finish_block(run, "b0", BlockStatus.SUCCEEDED, output="ONE")
    record_attempt(block, number=1, outcome=AttemptOutcome.RETRY, http_status=500,
                   error_code="api_error", error_message="internal", request_id="req_1", latency_ms=40)
    record_attempt(block, number=2, outcome=AttemptOutcome.SUCCEEDED, http_status=200, output="ONE",
                   request_id="req_2", latency_ms=35, input_tokens=10, output_tokens=5)
    body = api(owner).get(f"{blocks_url(run)}b0/").json()
    assert (body["input"], body["output"], body["status"]) == ("one", "ONE", "succeeded")
    assert [(a["number"], a["outcome"], a["http_status"], a["request_id"]) for a in body["attempts"]] == [
        (1, "retry", 500, "req_1"), (2, "succeeded", 200, "req_2")]
    assert body["attempts"][1]["usage"]["output_tokens"] == 5
    assert body["attempts"][0]["error_message"] == "internal"


def test_a_blocks_attempts_keep_earlier_passes(owner, run, api):
    block = finish_block(run, "b0", BlockStatus.SUCCEEDED, output="second")
    record_attempt(block, number=1, pass_number=1, output="first")
    record_attempt(block, number=1, pass_number=2, output="second")
    body = api(owner).get(f"{blocks_url(run)}b0/").json()
    assert [(a["pass_number"], a["output"]) for a in body["attempts"]] == [(1, "first"), (2, "second")]


def test_staff_read_any_block(staff, run, api):
    assert api(staff).get(f"{blocks_url(run)}b1/").json()["input"] == "two"


def test_a_uid_may_contain_slashes(owner, offline_key, api):
    from apps.runs.services import BlockSpec, run_create

    run = run_create(owner=owner, key=offline_key, model="claude-haiku-4-5",
                     blocks=[BlockSpec(uid="docs/a.txt", input="text")])
    assert api(owner).get(f"{blocks_url(run)}docs/a.txt/").json()["uid"] == "docs/a.txt"


@pytest.mark.parametrize("uid", ["nope", "%00"])
def test_an_unknown_block_is_a_404_in_the_error_shape(owner, run, api, uid):
    response = api(owner).get(f"{blocks_url(run)}{uid}/")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
