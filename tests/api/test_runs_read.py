"""GET /api/v1/runs/ and /api/v1/runs/{id}/: each user sees their own runs, staff see all; filters,
ordering and pages; a run in full, with exact counts, progress, usage, cost, timings and version."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.runs.models import BlockStatus, Run, RunStatus
from tests.api.helpers import complete, error_of, finish_block, set_status
from tests.factories import SECRET, make_key, make_run

URL = "/api/v1/runs/"


def ids(response) -> list[str]:
    return [run["id"] for run in response.json()["results"]]


def test_a_user_lists_only_their_own_runs(owner, outsider, run, api):
    make_run(outsider, make_key(outsider), ["theirs"])
    assert ids(api(owner).get(URL)) == [str(run.pk)]


def test_an_outsider_sees_none_of_the_owners_runs(outsider, run, api):
    assert ids(api(outsider).get(URL)) == []


def test_staff_list_every_run(owner, outsider, staff, run, api):
    theirs = make_run(outsider, make_key(outsider), ["theirs"])
    assert set(ids(api(staff).get(URL))) == {str(run.pk), str(theirs.pk)}


def test_the_list_filters_by_status(owner, offline_key, api):
    done = complete(make_run(owner, offline_key, ["a"]))
    make_run(owner, offline_key, ["b"])
    assert ids(api(owner).get(URL, {"status": "complete"})) == [str(done.pk)]


def test_the_list_filters_by_model(owner, offline_key, api):
    sonnet = make_run(owner, offline_key, ["a"], model="claude-sonnet-4-6")
    make_run(owner, offline_key, ["b"])
    assert ids(api(owner).get(URL, {"model": "claude-sonnet-4-6"})) == [str(sonnet.pk)]


def test_the_list_filters_by_a_created_range(owner, offline_key, api):
    runs = [make_run(owner, offline_key, [str(day)]) for day in (1, 2, 3)]
    for day, run in zip((1, 2, 3), runs, strict=True):
        Run.objects.filter(pk=run.pk).update(created_at=datetime(2026, 3, day, 12, tzinfo=UTC))
    response = api(owner).get(URL, {"created_after": "2026-03-02T00:00:00Z",
                                    "created_before": "2026-03-03T00:00:00Z"})
    assert ids(response) == [str(runs[1].pk)]


@pytest.mark.parametrize(("ordering", "expected"), [
    ("created_at", ["old", "mid", "new"]),
    ("-created_at", ["new", "mid", "old"]),
    ("status", ["mid", "new", "old"]),  # canceled, complete, queued
])
def test_the_list_is_ordered_as_asked(owner, offline_key, api, ordering, expected):
    now = datetime.now(UTC)
    for age, (name, status) in enumerate([("new", RunStatus.COMPLETE), ("mid", RunStatus.CANCELED),
                                          ("old", RunStatus.QUEUED)]):
        run = make_run(owner, offline_key, ["x"], name=name)
        Run.objects.filter(pk=run.pk).update(status=status, created_at=now - timedelta(hours=age))
    names = [run["name"] for run in api(owner).get(URL, {"ordering": ordering}).json()["results"]]
    assert names == expected


def test_the_newest_runs_come_first_by_default(owner, offline_key, api):
    first = make_run(owner, offline_key, ["a"])
    second = make_run(owner, offline_key, ["b"])
    Run.objects.filter(pk=first.pk).update(created_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert ids(api(owner).get(URL)) == [str(second.pk), str(first.pk)]


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "sleeping"}, "status"),
    ({"created_after": "yesterday"}, "created_after"),
    ({"ordering": "owner"}, "ordering"),
    ({"model": "m" * 101}, "model"),
])
def test_a_bad_filter_is_a_400_naming_it(owner, api, params, field):
    response = api(owner).get(URL, params)
    assert response.status_code == 400
    assert field in error_of(response)["fields"]


def test_the_list_comes_in_pages(owner, offline_key, api):
    for text in "abc":
        make_run(owner, offline_key, [text])
    body = api(owner).get(URL, {"page_size": 2}).json()
    assert (body["count"], len(body["results"])) == (3, 2)
    assert len(api(owner).get(body["next"]).json()["results"]) == 1


def test_limit_sets_the_page_length_as_page_size_does(owner, offline_key, api):
    for text in "abc":
        make_run(owner, offline_key, [text])
    body = api(owner).get(URL, {"limit": 2}).json()
    assert (body["count"], len(body["results"])) == (3, 2)
    assert len(api(owner).get(body["next"]).json()["results"]) == 1


def test_a_page_past_the_end_is_a_404_in_the_error_shape(owner, run, api):
    response = api(owner).get(URL, {"page": 9})
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


# --- one run ---------------------------------------------------------------------------------------

def test_the_owner_reads_their_run(owner, run, api):
    response = api(owner).get(f"{URL}{run.pk}/")
    assert response.status_code == 200
    assert response.json()["name"] == "three blocks"


def test_another_users_run_is_a_404(outsider, run, api):
    response = api(outsider).get(f"{URL}{run.pk}/")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_staff_read_any_run(staff, run, api):
    response = api(staff).get(f"{URL}{run.pk}/")
    assert (response.status_code, response.json()["owner"]) == (200, "owner")


@pytest.mark.parametrize("run_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "%00"])
def test_a_missing_or_malformed_run_id_is_a_404_in_the_error_shape(owner, api, run_id):
    response = api(owner).get(f"{URL}{run_id}/")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_a_run_reports_exact_counts_and_progress(owner, run, api):
    finish_block(run, "b0", BlockStatus.SUCCEEDED, output="1")
    finish_block(run, "b1", BlockStatus.FAILED, error_code="invalid_request")
    body = api(owner).get(f"{URL}{run.pk}/").json()
    assert body["counts"] == {"total": 3, "succeeded": 1, "failed": 1, "canceled": 0, "remaining": 1}
    assert body["progress"] == pytest.approx(2 / 3)
    assert body["block_statuses"] == {"pending": 1, "claimed": 0, "succeeded": 1, "failed": 1,
                                      "canceled": 0}


def test_a_run_reports_its_usage_and_cost(owner, run, api):
    finish_block(run, "b0", BlockStatus.SUCCEEDED, output="1", cost="0.00125")
    body = api(owner).get(f"{URL}{run.pk}/").json()
    assert body["usage"] == {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 0, "cost_usd": "0.00125000"}


def test_a_finished_run_reports_its_timings(owner, run, api):
    complete(run)
    body = api(owner).get(f"{URL}{run.pk}/").json()
    assert body["created_at"] and body["started_at"] and body["finished_at"]
    assert body["duration_seconds"] == pytest.approx(90, abs=1)


def test_a_run_not_yet_started_has_no_duration(owner, run, api):
    assert api(owner).get(f"{URL}{run.pk}/").json()["duration_seconds"] is None


def test_a_run_reports_its_version_stamp(owner, run, api):
    body = api(owner).get(f"{URL}{run.pk}/").json()
    assert (body["pipeline_version"], body["prompt_version"], body["current_pass"]) == (
        run.pipeline_version, run.prompt_version, 1)


def test_a_paused_run_says_why(owner, run, api):
    set_status(run, RunStatus.PAUSED, paused_reason="budget of $1 spent")
    body = api(owner).get(f"{URL}{run.pk}/").json()
    assert (body["status"], body["paused_reason"]) == ("paused", "budget of $1 spent")


def test_a_run_whose_key_was_deleted_reads_with_a_null_key(owner, run, api):
    run.key.delete()
    assert api(owner).get(f"{URL}{run.pk}/").json()["key"] is None


def test_no_run_response_reveals_the_keys_secret(owner, run, api):
    client = api(owner)
    for url in (URL, f"{URL}{run.pk}/"):
        assert SECRET not in client.get(url).content.decode()
