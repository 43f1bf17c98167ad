"""A claim sums only the calls since the holder's kept sum (SpendLimit.spent_cache_*), and the result
is always what summing the whole period gives: with new calls, with a rolling window that slid, and
in a new month."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db.models import Sum

from apps.runs.models import Attempt, Run
from apps.runs.services.team_budget import team_room
from apps.teams.models import SpendPeriod, Team
from tests.factories import make_key, make_run

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def run(acme, alice) -> Run:
    Team.objects.filter(pk=acme.pk).update(limit_usd=100)
    return make_run(alice, make_key(alice, team=acme, label="k"), ["x"], team=acme)


def call(run: Run, cost: str, at: datetime) -> None:
    attempt = Attempt.objects.create(
        run=run,
        block=run.blocks.get(),
        number=1,
        outcome="succeeded",
        model=run.model,
        cost_usd=Decimal(cost),
    )
    Attempt.objects.filter(pk=attempt.pk).update(created_at=at)


def truth(run: Run, since: datetime) -> Decimal:
    return Attempt.objects.filter(run__team_id=run.team_id, created_at__gte=since).aggregate(
        s=Sum("cost_usd")
    )["s"] or Decimal(0)


def spent_at(run: Run, moment: datetime) -> Decimal:
    with time_machine.travel(moment, tick=False):
        room = team_room(Run.objects.get(pk=run.pk), lock=False)
    assert room is not None
    return room.spent


def test_the_kept_sum_is_stored_and_later_calls_are_added_to_it(run, acme):
    call(run, "1", START - timedelta(days=3))
    call(run, "2", START - timedelta(minutes=30))
    assert spent_at(run, START) == Decimal(3)
    acme.refresh_from_db()
    assert (acme.spent_cache_usd, acme.spent_cache_until) == (Decimal(3), START - timedelta(seconds=60))
    call(run, "4", START + timedelta(minutes=1))
    assert (
        spent_at(run, START + timedelta(minutes=2)) == Decimal(7) == truth(run, START.replace(day=1, hour=0))
    )


def test_a_rolling_window_that_slid_leaves_the_old_calls_behind(run, acme):
    Team.objects.filter(pk=acme.pk).update(period=SpendPeriod.ROLLING, window_days=7)
    call(run, "1", START - timedelta(days=6, hours=23))
    call(run, "2", START - timedelta(days=1))
    assert spent_at(run, START) == Decimal(3)
    later = START + timedelta(hours=2)
    call(run, "5", later - timedelta(minutes=5))
    assert spent_at(run, later) == Decimal(7) == truth(run, later - timedelta(days=7))


def test_a_new_month_starts_from_nothing(run, acme):
    call(run, "1", START - timedelta(days=2))
    assert spent_at(run, START) == Decimal(1)
    december = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    call(run, "2", december - timedelta(minutes=10))
    assert spent_at(run, december) == Decimal(2)
