"""A team's spend limit at 80% and 100%: one signed `team.spend` event per crossing to the team's
webhook_url, signed with the secret of the admin who set it; re-armed by a new period."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model
from standardwebhooks.webhooks import Webhook

from apps.runs.models import Attempt
from apps.runs.services.team_budget import spend_alerts_check
from apps.teams.models import Team
from apps.teams.services import spend_limit_set, team_set_webhook
from apps.webhooks.models import WebhookDelivery
from apps.webhooks.services import webhook_secret_rotate
from tests.factories import make_key, make_run, make_team

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_user("teamadmin")


@pytest.fixture
def admins_secret(admin) -> str:
    return webhook_secret_rotate(owner=admin)[1]


@pytest.fixture
def team(admin, admins_secret, receiver) -> Team:
    team = make_team("acme", admin=admin)
    team_set_webhook(team=team, url=receiver.url, signer=admin)
    spend_limit_set(holder=team, limit_usd=Decimal("1.00"))
    return team


def spend(team: Team, owner, amount: str) -> None:
    run = make_run(owner, make_key(owner, team=team, label=f"k{Attempt.objects.count()}"), ["x"], team=team)
    Attempt.objects.create(
        run=run,
        block=run.blocks.get(),
        number=1,
        outcome="succeeded",
        model=run.model,
        cost_usd=Decimal(amount),
    )


def test_eighty_percent_sends_one_signed_event(team, admin, admins_secret, receiver, deliver_inline):
    spend(team, admin, "0.85")
    assert spend_alerts_check() == 1
    (request,) = receiver.received
    event = Webhook(admins_secret).verify(request.body, request.headers)
    assert event["type"] == "team.spend"
    assert (event["data"]["team"], event["data"]["threshold_percent"], event["data"]["spent_usd"]) == (
        "acme",
        80,
        "0.85000000",
    )


def test_a_crossing_is_announced_once(team, admin, receiver, deliver_inline):
    spend(team, admin, "0.85")
    spend_alerts_check()
    assert spend_alerts_check() == 0
    assert WebhookDelivery.objects.filter(team=team).count() == 1


def test_a_hundred_percent_follows_eighty(team, admin, receiver, deliver_inline):
    spend(team, admin, "0.85")
    spend_alerts_check()
    spend(team, admin, "0.20")
    assert spend_alerts_check() == 1
    levels = [
        json.loads(d.body)["data"]["threshold_percent"]
        for d in WebhookDelivery.objects.filter(team=team).order_by("pk")
    ]
    assert levels == [80, 100]


def test_a_new_month_rearms_the_threshold_without_an_event(team, admin, receiver, deliver_inline):
    spend(team, admin, "0.85")
    spend_alerts_check()
    now = datetime.now(tz=UTC)
    next_month = (now.replace(day=1) + timedelta(days=32)).replace(day=1, hour=1)
    with time_machine.travel(next_month):
        assert spend_alerts_check() == 0
    team.refresh_from_db()
    assert team.alert_level == 0
    assert WebhookDelivery.objects.filter(team=team).count() == 1
