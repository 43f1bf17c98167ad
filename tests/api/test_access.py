"""Every run endpoint answers an outsider as if the run did not exist, and changes nothing; every one
needs credentials."""

import pytest

from apps.runs.models import Block, BlockStatus, Run, RunStatus
from tests.api.helpers import error_of, set_status

ENDPOINTS = [
    ("get", ""),
    ("post", "cancel/"),
    ("post", "resume/"),
    ("post", "reseed/"),
    ("get", "results/"),
    ("get", "blocks/"),
    ("get", "blocks/b0/"),
]
IDS = ["retrieve", "cancel", "resume", "reseed", "results", "blocks", "block"]


@pytest.mark.parametrize(("method", "suffix"), ENDPOINTS, ids=IDS)
def test_another_users_run_is_a_404_on_every_endpoint(outsider, run, api, method, suffix,
                                                       django_capture_on_commit_callbacks):
    set_status(run, RunStatus.PAUSED)  # a state in which every action would otherwise succeed
    with django_capture_on_commit_callbacks() as callbacks:
        response = getattr(api(outsider), method)(f"/api/v1/runs/{run.pk}/{suffix}", {"scope": "all"},
                                                  format="json")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert callbacks == []
    run.refresh_from_db()
    assert (run.status, run.current_pass) == (RunStatus.PAUSED, 1)
    assert not Block.objects.filter(run=run).exclude(status=BlockStatus.PENDING).exists()


@pytest.mark.parametrize(("method", "suffix"), [*ENDPOINTS, ("get", "list"), ("post", "create")],
                         ids=[*IDS, "list", "create"])
def test_every_endpoint_needs_credentials(run, api, method, suffix):
    url = "/api/v1/runs/" if suffix in ("list", "create") else f"/api/v1/runs/{run.pk}/{suffix}"
    response = getattr(api(), method)(url, {}, format="json")
    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Token'
    assert Run.objects.count() == 1
