"""The admin's overview: what is running, what it costs, keys and their lanes, dead letters, the last
hour; behind the admin login and the model permissions the admin uses; CSP-clean."""

import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from apps.core.redis import broker_redis
from apps.lanes.gate import LaneRef
from apps.lanes.limits import limit_group
from apps.runs.models import AttemptOutcome, PausedCause, RunStatus
from tests.api.helpers import set_status
from tests.console.helpers import attempt_at, dead_letter_at
from tests.factories import MODEL, make_key, make_run
from tests.runs.conftest import clean_broker  # noqa: F401

pytestmark = pytest.mark.django_db

OVERVIEW = reverse("admin:overview")
OPEN_RUNS = reverse("admin:overview_runs")


@pytest.fixture
def running(owner, offline_key):
    return set_status(make_run(owner, offline_key, [f"essay {i}" for i in range(10)], name="essays"),
                      RunStatus.RUNNING, completed_blocks=6, failed_blocks=1, cost_usd=Decimal("0.0421"))


def test_the_overview_is_behind_the_admin_login(client):
    response = client.get(OVERVIEW)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_every_admin_page_leads_to_the_overview(operator):
    assert f'<a href="{OVERVIEW}">Overview</a>' in operator.get(reverse("admin:index")).content.decode()


def test_open_runs_show_their_status_progress_rate_and_cost(operator, running, owner, offline_key):
    paused = set_status(make_run(owner, offline_key, ["x"], name="stopped"), RunStatus.PAUSED,
                        paused_cause=PausedCause.BUDGET, paused_reason="budget of $0.50 spent")
    now = timezone.now()
    for _ in range(4):
        attempt_at(running, now - timedelta(seconds=20))
    html = operator.get(OVERVIEW).content.decode()
    row = re.search(rf'<tr data-run="{running.pk}">.*?</tr>', html, re.S).group(0)
    assert "essays" in row and "running" in row and "7/10, 1 failed" in row and "$0.0421" in row
    assert re.search(r'<td class="num">4</td>', row)  # blocks in the last minute
    assert 'style="width:60.00%"' in row and 'style="width:10.00%"' in row  # succeeded, failed
    paused_row = re.search(rf'<tr data-run="{paused.pk}">.*?</tr>', html, re.S).group(0)
    assert "paused" in paused_row and "budget of $0.50 spent" in paused_row


def test_ended_runs_are_not_open_but_recently_ended(operator, running):
    set_status(running, RunStatus.COMPLETE, completed_blocks=0, failed_blocks=10,
               finished_at=timezone.now())
    html = operator.get(OVERVIEW).content.decode()
    assert f'data-run="{running.pk}"' not in html
    assert "No run is queued, running, paused or canceling." in html
    assert "complete, all failed" in html


def test_the_open_runs_are_fetched_again_alone_for_the_page_to_follow_them(operator, running):
    response = operator.get(OPEN_RUNS)
    assert response.status_code == 200
    html = response.content.decode()
    assert f'<tr data-run="{running.pk}">' in html and "<html" not in html


def test_the_overview_follows_its_runs_with_a_script_from_this_server_and_no_inline_script(operator, running):
    html = operator.get(OVERVIEW).content.decode()
    assert f'<div id="open-runs" data-url="{OPEN_RUNS}" data-poll="3">' in html
    assert re.search(r'<script src="/static/console/overview_live\.js" defer></script>', html)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # every script is a file
    assert re.search(r'<noscript><meta http-equiv="refresh" content="\d+"></noscript>', html)


def test_spend_today_and_this_month_by_model(operator, running):
    attempt_at(running, timezone.now() - timedelta(minutes=5), cost="0.1234")
    html = operator.get(OVERVIEW).content.decode()
    spend = html[html.index("<h2>Spend</h2>"):html.index("<h2>The last hour</h2>")]
    assert spend.count("$0.1234") == 4  # today and this month, in the cards and the model's row
    assert MODEL in spend


def test_the_last_hour_is_drawn_as_charts_of_answers_and_refusals(operator, running):
    now = timezone.now()
    attempt_at(running, now)
    attempt_at(running, now, outcome=AttemptOutcome.THROTTLED, http_status=429)
    html = operator.get(OVERVIEW).content.decode()
    assert "1 blocks answered, 1 calls refused for capacity." in html
    assert html.count('<figure class="console-chart"><svg') == 3  # answers, refusals, dead letters
    assert "1 429 rate-limited" in html


def test_dead_letters_by_code_say_whether_they_grow(operator, owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b"])
    dead_letter_at(run, "b0", timezone.now() - timedelta(minutes=5), code="overloaded_error")
    html = operator.get(OVERVIEW).content.decode()
    row = re.search(r"<tr><td><a [^>]*>overloaded_error</a>.*?</tr>", html, re.S).group(0)
    assert "growing" in row


def test_each_key_shows_its_lanes_state(operator, owner, offline_key, clean_broker):  # noqa: F811
    lane = LaneRef(key_id=offline_key.pk, group=limit_group(MODEL))
    until = (time.time() + 120) * 1000
    broker_redis().hset(lane.hash_key, mapping={"until_throttled": until, "cwnd": 8, "lim_r": 50})
    make_key(owner, label="spare")
    html = operator.get(OVERVIEW).content.decode()
    keys = html[html.index("<h2>Keys and their lanes</h2>"):]
    assert "throttled (429) until" in keys and "50 / ? / ?" in keys
    assert "spare" in keys and "no lane yet" in keys


def test_staff_without_view_permissions_see_only_what_they_may(client):
    clerk = get_user_model().objects.create_user("clerk", password="x", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_providerkey"))
    client.force_login(clerk)
    html = client.get(OVERVIEW).content.decode()
    assert "Keys and their lanes" in html
    assert "Open runs" not in html and "Spend" not in html and "Dead letters" not in html
    assert client.get(OPEN_RUNS).status_code == 403
