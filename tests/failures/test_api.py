"""/api/v1/failures/: owners see and operate on their runs' failures, nobody else's (a 404, not a 403);
staff see all."""

import pytest
from rest_framework.test import APIClient

from apps.failures.models import PipelineFailure
from apps.runs.models import Block
from tests.factories import make_key, make_run
from tests.failures.helpers import active_run, failure_of, settle

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    def client_for(user) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return client_for


@pytest.fixture
def failure(owner, offline_key) -> PipelineFailure:
    run = settle(active_run(owner, offline_key, ["a", "b"], max_attempts=1), fail={"b1"})
    return failure_of(run, "b1")


@pytest.fixture
def outsiders_failure(outsider) -> PipelineFailure:
    run = settle(make_run(outsider, make_key(outsider), ["x"], max_attempts=1), fail={"b0"},
                 code="overloaded_error")
    return failure_of(run, "b0")


def ids(response) -> list[int]:
    return [row["id"] for row in response.json()["results"]]


# --- reading --------------------------------------------------------------------------------------------

def test_an_owner_lists_the_failures_of_their_runs_only(api, owner, failure, outsiders_failure):
    response = api(owner).get("/api/v1/failures/")
    assert response.status_code == 200
    assert ids(response) == [failure.pk]


def test_a_listed_failure_shows_its_block_state_and_counts(api, owner, failure):
    row = api(owner).get("/api/v1/failures/").json()["results"][0]
    assert (row["block_uid"], row["state"], row["error_code"], row["attempt_count"]) == (
        "b1", "scheduled", "api_error", 1)
    assert row["run"] == str(failure.run_id)


def test_staff_list_every_failure(api, staff, failure, outsiders_failure):
    assert sorted(ids(api(staff).get("/api/v1/failures/"))) == sorted([failure.pk, outsiders_failure.pk])


def test_another_users_failure_is_a_404_in_the_shared_error_shape(api, outsider, failure):
    response = api(outsider).get(f"/api/v1/failures/{failure.pk}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_malformed_failure_id_is_a_404(api, owner, failure):
    assert api(owner).get("/api/v1/failures/nope/").status_code == 404
    assert api(owner).get("/api/v1/failures/99999999999999999999999/").status_code == 404


def test_an_anonymous_request_is_refused(failure):
    assert APIClient().get("/api/v1/failures/").status_code in (401, 403)


@pytest.mark.parametrize(("query", "expected"), [
    ("resolved=false", ["mine"]),
    ("resolved=true", ["theirs"]),
    ("error_code=overloaded_error", ["theirs"]),
    ("failing_function=conveyor.runs.serve", ["mine", "theirs"]),
    ("failed_after=2000-01-01T00:00:00Z", ["mine", "theirs"]),
    ("failed_before=2000-01-01T00:00:00Z", []),
], ids=["unresolved", "resolved", "error-code", "function", "after", "before"])
def test_staff_filter_the_list(api, staff, failure, outsiders_failure, query, expected):
    names = {failure.pk: "mine", outsiders_failure.pk: "theirs"}
    if "resolved" in query:
        PipelineFailure.objects.filter(pk=outsiders_failure.pk).update(resolution_note="x",
                                                                      resolved_at="2020-01-01T00:00Z")
    response = api(staff).get(f"/api/v1/failures/?{query}")
    assert sorted(names[pk] for pk in ids(response)) == expected


@pytest.mark.parametrize(("state", "expected"), [
    ("scheduled", ["mine"]), ("parked", ["theirs"]), ("unresolved", ["mine", "theirs"]), ("resolved", []),
])
def test_the_list_filters_by_state_in_the_same_words_as_it_answers(api, staff, failure, outsiders_failure,
                                                                   state, expected):
    PipelineFailure.objects.filter(pk=outsiders_failure.pk).update(next_retry_at=None)
    names = {failure.pk: "mine", outsiders_failure.pk: "theirs"}
    rows = api(staff).get(f"/api/v1/failures/?state={state}").json()["results"]
    assert sorted(names[row["id"]] for row in rows) == expected
    assert all(row["state"] == state for row in rows if state != "unresolved")


def test_the_list_filters_by_run(api, owner, offline_key, failure):
    other = settle(make_run(owner, offline_key, ["z"], max_attempts=1), fail={"b0"})
    response = api(owner).get(f"/api/v1/failures/?run={other.pk}")
    assert ids(response) == [failure_of(other, "b0").pk]


def test_a_bad_filter_is_a_400_naming_it(api, owner, failure):
    response = api(owner).get("/api/v1/failures/?run=not-a-uuid")
    assert response.status_code == 400
    assert "run" in response.json()["error"]["fields"]


# --- replay ---------------------------------------------------------------------------------------------

def test_an_owner_replays_a_failure_and_its_block_goes_back_to_work(api, owner, failure):
    response = api(owner).post(f"/api/v1/failures/{failure.pk}/replay/")
    assert response.status_code == 200
    assert response.json()["replay_count"] == 1
    assert Block.objects.get(pk=failure.block_id).status == "pending"


def test_an_outsider_cannot_replay_someone_elses_failure(api, outsider, failure):
    assert api(outsider).post(f"/api/v1/failures/{failure.pk}/replay/").status_code == 404
    failure.refresh_from_db()
    assert failure.replay_count == 0


def test_replaying_a_resolved_failure_is_a_409(api, owner, failure):
    PipelineFailure.objects.filter(pk=failure.pk).update(resolved_at="2020-01-01T00:00Z")
    response = api(owner).post(f"/api/v1/failures/{failure.pk}/replay/")
    assert response.status_code == 409
    assert "already resolved" in response.json()["error"]["message"]


def test_a_bulk_replay_by_ids_refuses_ids_the_user_cannot_see(api, owner, failure, outsiders_failure):
    response = api(owner).post("/api/v1/failures/replay/",
                               {"ids": [failure.pk, outsiders_failure.pk]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"replayed": [failure.pk], "resolved": [],
                               "refused": [{"id": outsiders_failure.pk, "reason": "not found"}]}
    outsiders_failure.refresh_from_db()
    assert outsiders_failure.replay_count == 0


def test_a_bulk_replay_by_filter_replays_the_matching_unresolved_failures(api, staff, failure,
                                                                           outsiders_failure):
    response = api(staff).post("/api/v1/failures/replay/", {"error_code": "overloaded_error"},
                               format="json")
    assert response.json()["replayed"] == [outsiders_failure.pk]
    failure.refresh_from_db()
    assert failure.replay_count == 0


def test_a_bulk_replay_needs_ids_or_a_filter(api, owner, failure):
    response = api(owner).post("/api/v1/failures/replay/", {}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


# --- resolve --------------------------------------------------------------------------------------------

def test_an_owner_resolves_a_failure_with_a_note(api, owner, failure):
    response = api(owner).post(f"/api/v1/failures/{failure.pk}/resolve/", {"note": "bad input"},
                               format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["resolution_note"], body["next_retry_at"]) == ("resolved", "bad input", None)


def test_resolving_needs_a_note(api, owner, failure):
    response = api(owner).post(f"/api/v1/failures/{failure.pk}/resolve/", {"note": " "}, format="json")
    assert response.status_code == 400
    assert "note" in response.json()["error"]["fields"]
    failure.refresh_from_db()
    assert failure.resolved_at is None


def test_resolving_twice_is_a_409(api, owner, failure):
    api(owner).post(f"/api/v1/failures/{failure.pk}/resolve/", {"note": "once"}, format="json")
    response = api(owner).post(f"/api/v1/failures/{failure.pk}/resolve/", {"note": "twice"}, format="json")
    assert response.status_code == 409


def test_an_outsider_cannot_resolve_someone_elses_failure(api, outsider, failure):
    response = api(outsider).post(f"/api/v1/failures/{failure.pk}/resolve/", {"note": "mine now"},
                                  format="json")
    assert response.status_code == 404
    failure.refresh_from_db()
    assert failure.resolved_at is None


def test_staff_resolve_any_failure(api, staff, outsiders_failure):
    response = api(staff).post(f"/api/v1/failures/{outsiders_failure.pk}/resolve/", {"note": "ops"},
                               format="json")
    assert response.status_code == 200
