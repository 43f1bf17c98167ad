"""Every API operation on a team's run, its failure, its webhook delivery, the team's key, pipeline and
team, by each of the cast: Acme's admin (alice), member (bob) and viewer (carol), Globex's admin
(dave), staff without permissions, staff with the admin's view_* permissions, staff with view_* and
change_*, and nobody. Reads: every member and reading staff. Run writes: admins, members and
operating staff; a viewer or reading staff gets a 403 saying why. Key and team writes: the team's
admins and operating staff. Another team's member and permission-less staff get a 404, as if nothing
were there. What is refused changes nothing."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from apps.failures.models import PipelineFailure
from apps.pipelines.models import Pipeline
from apps.runs.models import Block, BlockStatus, Run, RunStatus
from apps.teams.models import Membership
from apps.webhooks.models import WebhookDelivery
from tests.factories import make_key, make_run

pytestmark = pytest.mark.django_db

READ, WRITE, ADMIN = "read", "write", "admin"
OK = "ok"

# (name, method, path, body, kind)
OPERATIONS = [
    ("run_retrieve", "get", "runs/{run}/", None, READ),
    ("run_blocks", "get", "runs/{run}/blocks/", None, READ),
    ("run_block", "get", "runs/{run}/blocks/b1/", None, READ),
    ("run_results", "get", "runs/{run}/results/", None, READ),
    ("run_failures_export", "get", "runs/{run}/failures/", None, READ),
    ("run_compare", "get", "runs/{run}/compare/{run}/", None, READ),
    ("failure_retrieve", "get", "failures/{failure}/", None, READ),
    ("delivery_retrieve", "get", "webhooks/deliveries/{delivery}/", None, READ),
    ("key_retrieve", "get", "keys/{key}/", None, READ),
    ("pipeline_retrieve", "get", "pipelines/{pipeline}/", None, READ),
    ("team_retrieve", "get", "teams/{team}/", None, READ),
    ("team_members", "get", "teams/{team}/members/", None, READ),
    ("run_cancel", "post", "runs/{run}/cancel/", {}, WRITE),
    ("run_resume", "post", "runs/{run}/resume/", {}, WRITE),
    ("run_budget", "post", "runs/{run}/budget/", {"max_cost_usd": "5"}, WRITE),
    ("run_reseed", "post", "runs/{run}/reseed/", {"scope": "all"}, WRITE),
    ("failure_resolve", "post", "failures/{failure}/resolve/", {"note": "looked at it"}, WRITE),
    ("failure_replay", "post", "failures/{failure}/replay/", {}, WRITE),
    ("delivery_redeliver", "post", "webhooks/deliveries/{delivery}/redeliver/", {}, WRITE),
    ("key_update", "patch", "keys/{key}/", {"label": "renamed"}, ADMIN),
    ("team_update", "patch", "teams/{team}/", {"name": "acme two"}, ADMIN),
    ("team_limit", "post", "teams/{team}/limit/", {"limit_usd": "10"}, ADMIN),
    ("team_member_add", "post", "teams/{team}/members/", {"user": "eve", "role": "viewer"}, ADMIN),
    ("team_member_role", "patch", "teams/{team}/members/{bob}/", {"role": "viewer"}, ADMIN),
    ("team_member_remove", "delete", "teams/{team}/members/{frank}/", None, ADMIN),
    ("run_events", "get", "runs/{run}/events/", None, READ),
    ("key_validate", "post", "keys/{key}/validate/", {}, ADMIN),
    # The key is used by the paused run: its admin may delete it but is told it is in use (409);
    # deleting another's key takes keys.delete_providerkey, which operating staff lack.
    ("key_delete", "delete", "keys/{key}/", None, "delete"),
]

# What each of the cast gets, per kind of operation.
EXPECTED = {
    "alice": {READ: OK, WRITE: OK, ADMIN: OK, "delete": 409},
    "bob": {READ: OK, WRITE: OK, ADMIN: 403, "delete": 403},
    "carol": {READ: OK, WRITE: 403, ADMIN: 403, "delete": 403},
    "dave": {READ: 404, WRITE: 404, ADMIN: 404, "delete": 404},
    "plain_staff": {READ: 404, WRITE: 404, ADMIN: 404, "delete": 404},
    "reading_staff": {READ: OK, WRITE: 403, ADMIN: 403, "delete": 403},
    "operating_staff": {READ: OK, WRITE: OK, ADMIN: OK, "delete": 403},
    "anonymous": {READ: 401, WRITE: 401, ADMIN: 401, "delete": 401},
}


@pytest.fixture
def world(acme, alice, bob, globex, db):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("eve", email="eve@example.com")
    frank = get_user_model().objects.create_user("frank", email="frank@example.com")
    Membership.objects.create(team=acme, user=frank, role="viewer")
    key = make_key(alice, team=acme, label="acme")
    run = make_run(bob, key, ["one", "two", "three"], team=acme, name="acme's run")
    Run.objects.filter(pk=run.pk).update(status=RunStatus.PAUSED)  # every action would succeed
    block = Block.objects.get(run=run, uid="b1")
    Block.objects.filter(pk=block.pk).update(
        status=BlockStatus.FAILED, error_code="invalid_request", attempts=3
    )
    Run.objects.filter(pk=run.pk).update(failed_blocks=1)
    failure = PipelineFailure.objects.create(
        run=run, block=block, failing_function="test", error_code="invalid_request", attempt_count=3
    )
    now = timezone.now()
    delivery = WebhookDelivery.objects.create(
        run=run,
        pass_number=1,
        event_id="msg_matrix",
        url="https://hooks.example.com/x",
        body="{}",
        status="delivered",
        give_up_at=now + timedelta(days=1),
        created_at=now,
    )
    pipeline = Pipeline.objects.create(owner=bob, team=acme, name="acme's pipeline")
    return {
        "run": run.pk,
        "failure": failure.pk,
        "delivery": delivery.pk,
        "key": key.pk,
        "pipeline": pipeline.pk,
        "team": acme.pk,
        "bob": bob.pk,
        "frank": frank.pk,
    }


def client_for(request, who: str) -> APIClient:
    client = APIClient()
    if who != "anonymous":
        client.force_authenticate(request.getfixturevalue(who))
    return client


def snapshot(world) -> tuple:
    run = Run.objects.get(pk=world["run"])
    failure = PipelineFailure.objects.get(pk=world["failure"])
    delivery = WebhookDelivery.objects.get(pk=world["delivery"])
    return (
        run.status,
        run.current_pass,
        run.options,
        failure.resolved_at,
        failure.replay_count,
        delivery.status,
        delivery.attempts,
        list(Membership.objects.values_list("user_id", "role")),
    )


@pytest.mark.parametrize("who", list(EXPECTED))
@pytest.mark.parametrize(
    ("name", "method", "path", "body", "kind"), OPERATIONS, ids=[o[0] for o in OPERATIONS]
)
def test_every_operation_answers_each_role_as_its_rights_say(
    request, world, who, name, method, path, body, kind
):
    cache.clear()
    before = snapshot(world)
    response = getattr(client_for(request, who), method)(
        f"/api/v1/{path.format(**world)}", body, format="json"
    )
    expected = EXPECTED[who][kind]
    if expected == OK:
        assert response.status_code in (200, 201, 202, 204), (response.status_code, response.content[:300])
        return
    assert response.status_code == expected, response.content[:300]
    if expected == 403:
        message = response.json()["error"]["message"]
        assert "you" in message and len(message) > 30, message  # it says why
    assert snapshot(world) == before


CREATE = [
    ("alice", 201),
    ("bob", 201),
    ("carol", 403),
    ("dave", 400),
    ("plain_staff", 400),
    ("reading_staff", 400),
    ("operating_staff", 400),
    ("anonymous", 401),
]


@pytest.mark.parametrize(("who", "expected"), CREATE, ids=[c[0] for c in CREATE])
def test_submitting_a_run_for_the_team_takes_an_admin_or_a_member(request, world, who, expected):
    body = {
        "key": world["key"],
        "team": world["team"],
        "model": "claude-haiku-4-5",
        "blocks": [{"uid": "x", "input": "hello"}],
    }
    response = client_for(request, who).post("/api/v1/runs/", body, format="json")
    assert response.status_code == expected, response.content[:300]
    assert Run.objects.count() == (2 if expected == 201 else 1)


def test_a_viewer_submitting_is_told_viewers_do_not_submit(request, world, carol):
    body = {
        "key": world["key"],
        "team": world["team"],
        "model": "claude-haiku-4-5",
        "blocks": [{"uid": "x", "input": "hello"}],
    }
    response = client_for(request, "carol").post("/api/v1/runs/", body, format="json")
    assert response.json()["error"]["message"] == (
        "you are a viewer of team acme: viewers read the team's runs, only its admins and members submit them"
    )


LISTS = ["runs/", "failures/", "webhooks/deliveries/", "pipelines/"]
SEES = {
    "alice": 1,
    "bob": 1,
    "carol": 1,
    "dave": 0,
    "plain_staff": 0,
    "reading_staff": 1,
    "operating_staff": 1,
}


@pytest.mark.parametrize("who", list(SEES))
@pytest.mark.parametrize("path", LISTS)
def test_every_list_holds_what_the_caller_may_read(request, world, who, path):
    body = client_for(request, who).get(f"/api/v1/{path}").json()
    assert body["count"] == SEES[who]


@pytest.mark.parametrize("who", list(SEES))
def test_the_key_list_holds_the_teams_key_for_its_members(request, world, who):
    body = client_for(request, who).get("/api/v1/keys/").json()
    assert len(body) == SEES[who]


def test_a_personal_run_stays_its_owners_alone_even_within_a_team(request, world, bob, carol, alice):
    own = make_run(bob, make_key(bob, label="bob's own"), ["x"], name="bob's personal run")
    assert client_for(request, "bob").get(f"/api/v1/runs/{own.pk}/").status_code == 200
    assert client_for(request, "alice").get(f"/api/v1/runs/{own.pk}/").status_code == 404
    assert client_for(request, "carol").get(f"/api/v1/runs/{own.pk}/").status_code == 404
