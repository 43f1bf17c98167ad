"""Spend reports, from the recorded usage: by team, member, key, model and day, over the runs the
caller may read; JSON with a total, CSV, and the admin's page with its chart."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.runs.models import Attempt, Run
from tests.factories import make_key, make_run

pytestmark = pytest.mark.django_db

SPEND = "/api/v1/spend/"


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def billed(run: Run, cost: str, *, model: str | None = None, days_ago: int = 0) -> Attempt:
    attempt = Attempt.objects.create(
        run=run,
        block=run.blocks.first(),
        key=run.key,  # the key the call was made with (pools: one of the run's)
        number=1,
        outcome="succeeded",
        model=model or run.model,
        cost_usd=Decimal(cost),
        input_tokens=100,
        output_tokens=10,
    )
    if days_ago:
        Attempt.objects.filter(pk=attempt.pk).update(
            created_at=datetime.now(tz=UTC) - timedelta(days=days_ago)
        )
    return attempt


@pytest.fixture
def usage(acme, alice, bob, dave, globex):
    key = make_key(alice, team=acme, label="acme")
    billed(make_run(alice, key, ["a"], team=acme), "0.10")
    billed(make_run(bob, key, ["b"], team=acme), "0.25")
    billed(make_run(bob, key, ["c"], team=acme), "0.05", model="claude-sonnet-4-5")
    billed(make_run(dave, make_key(dave, team=globex, label="globex"), ["d"], team=globex), "9.00")
    billed(make_run(bob, make_key(bob, label="own"), ["e"]), "1.00")


def test_by_member_within_a_team(usage, alice, acme):
    body = api(alice).get(SPEND, {"team": acme.pk, "group_by": "member"}).json()
    assert [(r["member"], r["cost_usd"]) for r in body["rows"]] == [
        ("alice", "0.10000000"),
        ("bob", "0.30000000"),
    ]
    assert body["total"]["cost_usd"] == "0.40000000"


def test_by_team_the_caller_sees_only_their_teams_and_own_runs(usage, bob):
    rows = api(bob).get(SPEND, {"group_by": "team"}).json()["rows"]
    assert [(r["team_name"], r["cost_usd"]) for r in rows] == [("acme", "0.40000000"), (None, "1.00000000")]


def test_another_teams_member_sees_none_of_it(usage, dave, acme):
    assert api(dave).get(SPEND, {"team": acme.pk}).json()["rows"] == []


def test_by_model_and_day(usage, alice, acme):
    rows = api(alice).get(SPEND, {"team": acme.pk, "group_by": "model,day"}).json()["rows"]
    today = datetime.now(tz=UTC).date().isoformat()
    assert [(r["model"], r["day"], r["calls"]) for r in rows] == [
        ("claude-haiku-4-5", today, 2),
        ("claude-sonnet-4-5", today, 1),
    ]


def test_by_key(usage, alice, acme):
    rows = api(alice).get(SPEND, {"group_by": "key"}).json()["rows"]
    assert [(r["key_label"], r["cost_usd"]) for r in rows] == [("acme", "0.40000000")]


def test_since_excludes_earlier_days(usage, alice, acme):
    billed(Run.objects.filter(team=acme).first(), "5.00", days_ago=40)
    since = (datetime.now(tz=UTC) - timedelta(days=2)).date().isoformat()
    body = api(alice).get(SPEND, {"team": acme.pk, "since": since, "group_by": "team"}).json()
    assert body["total"]["cost_usd"] == "0.40000000"


def test_csv_has_a_header_and_a_row_per_group(usage, alice, acme):
    response = api(alice).get(SPEND, {"team": acme.pk, "group_by": "member", "format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().splitlines()
    assert lines[0] == (
        "member,calls,input_tokens,output_tokens,cache_creation_input_tokens,cache_read_input_tokens,cost_usd"
    )
    assert lines[1:] == ["alice,1,100,10,0,0,0.10000000", "bob,2,200,20,0,0,0.30000000"]


def test_an_unknown_group_is_a_400_naming_group_by(alice):
    response = api(alice).get(SPEND, {"group_by": "colour"})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["group_by"]


def test_the_admin_page_draws_the_chart_for_staff_who_may_view_runs(usage, reading_staff):
    client = Client()
    client.force_login(reading_staff)
    response = client.get("/admin/spend/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "<svg" in page and "Spend per day, by team" in page
    assert "globex" in page and "$9.00" in page


def test_the_admin_page_is_refused_to_staff_without_the_permission(plain_staff):
    client = Client()
    client.force_login(plain_staff)
    assert client.get("/admin/spend/").status_code == 403


def test_the_limits_say_what_each_period_spent_and_what_is_left(usage, alice, acme, bob):
    from apps.teams.models import Membership, Team

    Team.objects.filter(pk=acme.pk).update(limit_usd=1)
    Membership.objects.filter(team=acme, user=bob).update(limit_usd="0.5")
    rows = api(alice).get(f"{SPEND}limits/").json()
    assert [(r["member"], r["spent_usd"], r["left_usd"]) for r in rows] == [
        (None, "0.40000000", "0.60000000"), ("bob", "0.30000000", "0.20000000")]


def test_another_teams_limits_are_not_listed(usage, dave, acme):
    from apps.teams.models import Team

    Team.objects.filter(pk=acme.pk).update(limit_usd=1)
    assert api(dave).get(f"{SPEND}limits/").json() == []
