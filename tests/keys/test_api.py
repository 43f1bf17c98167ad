"""/api/v1/keys/: owners manage their keys, nobody else's (a 404, not a 403); staff see all."""

import pytest

from apps.keys.models import ProviderKey
from apps.runs.models import Run, RunStatus
from tests.keys.conftest import GOOD_SECRET, PROXY_SECRET


def start_run(key: ProviderKey, status: str = RunStatus.RUNNING) -> Run:
    return Run.objects.create(owner=key.owner, key=key, model="claude-haiku-4-5", pipeline_version="1",
                              prompt_version="x", status=status)


def test_creating_a_key_returns_its_suffix_and_never_the_secret(owner, api):
    response = api(owner).post("/api/v1/keys/", {"label": "Main", "secret": GOOD_SECRET}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["suffix"] == GOOD_SECRET[-4:]
    assert "secret" not in body and "secret_ciphertext" not in body
    assert body["is_valid"] is None  # not validated yet
    assert body["base_url"] == ""


def test_a_created_key_belongs_to_the_requester(owner, api):
    api(owner).post("/api/v1/keys/", {"label": "Main", "secret": GOOD_SECRET}, format="json")
    assert ProviderKey.objects.get().owner == owner


def test_a_key_needs_a_secret(owner, api):
    response = api(owner).post("/api/v1/keys/", {"label": "Main"}, format="json")
    assert response.status_code == 400
    assert "secret" in response.json()["error"]["fields"]


@pytest.mark.parametrize("secret", ["sk-ant-with space-123", "sk-ant-caf\u00e9-12345", "short"],
                         ids=["space", "non-ascii", "too-short"])
def test_a_malformed_secret_is_refused_without_being_quoted(owner, api, secret):
    response = api(owner).post("/api/v1/keys/", {"label": "Main", "secret": secret}, format="json")
    assert response.status_code == 400
    assert "secret" in response.json()["error"]["fields"]
    assert secret not in response.content.decode()


def test_a_bad_base_url_is_a_400_naming_the_rule(owner, api):
    response = api(owner).post("/api/v1/keys/", {"label": "Main", "secret": GOOD_SECRET,
                                                 "base_url": "http://api.example.com"}, format="json")
    assert response.status_code == 400
    assert "https" in response.json()["error"]["fields"]["base_url"][0]


def test_a_label_is_unique_per_owner(owner, api, make_key):
    make_key(owner, label="Main")
    response = api(owner).post("/api/v1/keys/", {"label": "Main", "secret": GOOD_SECRET}, format="json")
    assert response.status_code == 400
    assert "label" in response.json()["error"]["fields"]


def test_a_user_lists_only_their_own_keys(owner, outsider, api, make_key):
    mine = make_key(owner)
    make_key(outsider)
    assert [k["id"] for k in api(owner).get("/api/v1/keys/").json()] == [mine.pk]


def test_staff_list_every_key(owner, outsider, staff, api, make_key):
    keys = {make_key(owner).pk, make_key(outsider).pk}
    assert {k["id"] for k in api(staff).get("/api/v1/keys/").json()} == keys


@pytest.mark.parametrize(("method", "suffix", "body"), [
    ("get", "", None),
    ("patch", "", {"label": "Mine now"}),
    ("post", "validate/", None),
    ("delete", "", None),
], ids=["read", "update", "validate", "delete"])
def test_another_users_key_is_a_404(owner, outsider, api, make_key, method, suffix, body,
                                    django_capture_on_commit_callbacks):
    key = make_key(owner)
    with django_capture_on_commit_callbacks() as callbacks:
        response = getattr(api(outsider), method)(f"/api/v1/keys/{key.pk}/{suffix}", body, format="json")
    assert response.status_code == 404
    assert callbacks == []  # nothing queued for someone else's key
    after = ProviderKey.objects.get(pk=key.pk)
    assert (after.label, after.owner) == ("Main", owner)


def test_staff_can_read_another_users_key(owner, staff, api, make_key):
    key = make_key(owner)
    assert api(staff).get(f"/api/v1/keys/{key.pk}/").json()["owner"] == "owner"


def test_anonymous_requests_are_refused(owner, client, make_key):
    make_key(owner)
    assert client.get("/api/v1/keys/").status_code in (401, 403)


def test_updating_the_secret_changes_the_suffix_and_resets_the_verdict(owner, api, make_key):
    key = make_key(owner)
    ProviderKey.objects.filter(pk=key.pk).update(is_valid=True)
    response = api(owner).patch(f"/api/v1/keys/{key.pk}/", {"secret": PROXY_SECRET}, format="json")
    assert response.status_code == 200
    assert (response.json()["suffix"], response.json()["is_valid"]) == (PROXY_SECRET[-4:], None)


def test_updating_the_label_only_keeps_the_secret(owner, api, make_key):
    key = make_key(owner)
    api(owner).patch(f"/api/v1/keys/{key.pk}/", {"label": "Renamed"}, format="json")
    key.refresh_from_db()
    assert (key.label, key.suffix) == ("Renamed", GOOD_SECRET[-4:])


def test_put_is_not_offered(owner, api, make_key):
    key = make_key(owner)
    response = api(owner).put(f"/api/v1/keys/{key.pk}/", {"label": "X", "secret": GOOD_SECRET},
                              format="json")
    assert response.status_code == 405


def test_asking_for_validation_queues_it_and_records_the_verdict(owner, api, make_key, mock_provider,
                                                                 eager_celery,
                                                                 django_capture_on_commit_callbacks):
    key = make_key(owner, base_url=mock_provider.base_url)
    with django_capture_on_commit_callbacks(execute=True):
        response = api(owner).post(f"/api/v1/keys/{key.pk}/validate/")
    assert response.status_code == 202
    key.refresh_from_db()
    assert key.is_valid is True


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED,
                                    RunStatus.CANCELING])
def test_deleting_a_key_is_refused_while_a_run_uses_it(owner, api, make_key, status):
    key = make_key(owner)
    start_run(key, status)
    response = api(owner).delete(f"/api/v1/keys/{key.pk}/")
    assert response.status_code == 409
    assert "1 active run" in response.json()["error"]["message"]
    assert ProviderKey.objects.filter(pk=key.pk).exists()


def test_deleting_a_key_only_finished_runs_used_removes_it_and_keeps_their_history(
    owner, api, make_key
):
    key = make_key(owner)
    run = start_run(key, RunStatus.COMPLETE)
    response = api(owner).delete(f"/api/v1/keys/{key.pk}/")
    assert response.status_code == 204
    assert not ProviderKey.objects.filter(pk=key.pk).exists()
    run.refresh_from_db()
    assert (run.status, run.key_id) == (RunStatus.COMPLETE, None)


def test_deleting_an_unused_key_removes_it(owner, api, make_key):
    key = make_key(owner)
    assert api(owner).delete(f"/api/v1/keys/{key.pk}/").status_code == 204
    assert not ProviderKey.objects.filter(pk=key.pk).exists()
