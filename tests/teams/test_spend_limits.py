"""A team's monthly (or rolling) spend limit is a hard cap across all of its runs: they pause with
cause `team_budget` when the next call would not fit, and resume when the period rolls over or the
limit is raised. Real PostgreSQL, the serving loop, the mock provider over HTTP."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db.models import Sum

from apps.runs.models import Attempt, PausedCause, Run
from apps.runs.services import blocks_claim
from apps.runs.services.lifecycle import RunStateError, run_resume
from apps.runs.services.team_budget import runs_resume_for_team_budget, spend_and_reserved
from apps.teams.models import Membership, SpendPeriod
from apps.teams.periods import period_start
from apps.teams.services import spend_limit_set
from tests.factories import make_key, make_run
from tests.runs.helpers import serve_until_settled

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = Decimal("0.004")  # about 33 of these blocks at the mock's usage, so three runs of 25 cannot all end


def team_runs(owner, key, *, runs: int = 3, blocks: int = 25) -> list[Run]:
    return [
        make_run(
            owner,
            key,
            [f"essay number {i} about rivers" for i in range(blocks)],
            max_tokens=200,
            parallelism=4,
            team=key.team,
            name=f"run {n}",
        )
        for n in range(runs)
    ]


def limited(team, amount: Decimal = LIMIT, **period):
    spend_limit_set(holder=team, limit_usd=amount, **period)
    team.refresh_from_db()
    return team


def serve_all(runs: list[Run]) -> list[Run]:
    for run in runs:
        serve_until_settled(run)
    for run in runs:
        run.refresh_from_db()
    return runs


def team_spend(team) -> Decimal:
    return Attempt.objects.filter(run__team=team).aggregate(s=Sum("cost_usd"))["s"] or Decimal(0)


def test_every_run_of_the_team_pauses_with_cause_team_budget(acme, bob, acme_key):
    limited(acme)
    runs = serve_all(team_runs(bob, acme_key))
    assert [(r.status, r.paused_cause) for r in runs] == [("paused", PausedCause.TEAM_BUDGET)] * 3
    assert all(r.reserved_usd == 0 for r in runs)


def test_the_teams_runs_together_spend_no_more_than_the_limit(acme, bob, acme_key):
    limited(acme)
    runs = serve_all(team_runs(bob, acme_key))
    spent = team_spend(acme)
    assert spent <= LIMIT
    assert spent > LIMIT / 2  # it stopped near the limit, not at the first block
    assert sum(r.completed_blocks for r in runs) < 75


def test_the_paused_reason_names_the_teams_limit_and_the_period(acme, bob, acme_key):
    limited(acme)
    run = serve_all(team_runs(bob, acme_key, runs=1, blocks=40))[0]
    assert "team acme's limit of $0.004 for this calendar month (UTC)" in run.paused_reason


def test_a_new_month_resumes_the_paused_runs_which_go_on_within_the_new_months_limit(acme, bob, acme_key):
    limited(acme)
    runs = serve_all(team_runs(bob, acme_key))
    now = datetime.now(tz=UTC)
    next_month = (now.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=1)
    with time_machine.travel(next_month, tick=True):
        assert runs_resume_for_team_budget() == 3
        runs = serve_all(runs)
        spent_this_month = Attempt.objects.filter(
            run__team=acme, created_at__gte=next_month.replace(second=0)
        ).aggregate(s=Sum("cost_usd"))["s"]
    assert spent_this_month is not None
    assert 0 < spent_this_month <= LIMIT
    assert sum(r.completed_blocks for r in runs) > 33 - 3


def test_the_pump_leaves_them_paused_within_the_same_month(acme, bob, acme_key):
    limited(acme)
    serve_all(team_runs(bob, acme_key))
    assert runs_resume_for_team_budget() == 0
    assert Run.objects.filter(team=acme, status="paused").count() == 3


def test_raising_the_limit_resumes_the_runs_at_once_and_they_finish(acme, bob, acme_key):
    limited(acme)
    runs = serve_all(team_runs(bob, acme_key))
    limited(acme, Decimal("5"))
    assert Run.objects.filter(team=acme, status="running").count() == 3
    runs = serve_all(runs)
    assert [r.status for r in runs] == ["complete"] * 3


def test_resuming_by_hand_is_refused_while_the_limit_has_no_room(acme, bob, acme_key):
    limited(acme)
    run = serve_all(team_runs(bob, acme_key, runs=1, blocks=40))[0]
    with pytest.raises(RunStateError, match="team acme's limit"):
        run_resume(run_id=run.pk)


def test_a_members_own_limit_pauses_their_runs_and_not_their_colleagues(acme, alice, bob, acme_key):
    limited(Membership.objects.get(team=acme, user=bob))
    bobs = team_runs(bob, acme_key, runs=1, blocks=40)[0]
    alices = team_runs(alice, acme_key, runs=1, blocks=40)[0]
    bobs, alices = serve_all([bobs, alices])
    assert (bobs.status, bobs.paused_cause) == ("paused", PausedCause.TEAM_BUDGET)
    assert "bob's limit in team acme" in bobs.paused_reason
    assert alices.status == "complete"


def test_personal_runs_do_not_count_against_the_team(acme, bob, acme_key, mock):
    limited(acme, Decimal("0"))
    personal = make_run(bob, make_key(bob, base_url=mock.base_url, label="own"), ["one", "two"])
    assert serve_until_settled(personal).status == "complete"


def test_a_rolling_window_counts_only_the_calls_of_its_days(acme, bob, acme_key):
    run = team_runs(bob, acme_key, runs=1, blocks=2)[0]
    block = run.blocks.first()
    old = Attempt.objects.create(
        run=run, block=block, number=1, outcome="succeeded", model=run.model, cost_usd=Decimal("1")
    )
    Attempt.objects.filter(pk=old.pk).update(created_at=datetime.now(tz=UTC) - timedelta(days=10))
    Attempt.objects.create(
        run=run, block=block, number=2, outcome="succeeded", model=run.model, cost_usd=Decimal("0.25")
    )
    team = limited(acme, Decimal("10"), period=SpendPeriod.ROLLING, window_days=7)
    since = period_start(team, datetime.now(tz=UTC))
    assert spend_and_reserved(team_id=acme.pk, user_id=None, since=since).spent == Decimal("0.25")


def test_a_claim_that_cannot_fit_with_nothing_in_flight_pauses_and_reserves_nothing(acme, bob, acme_key):
    limited(acme, Decimal("0.0001"))
    run = team_runs(bob, acme_key, runs=1, blocks=3)[0]
    claim = blocks_claim(run_id=run.pk, limit=4, worker="w")
    run.refresh_from_db()
    assert (claim.blocks, run.status, run.paused_cause) == ([], "paused", PausedCause.TEAM_BUDGET)
    assert run.reserved_usd == 0
