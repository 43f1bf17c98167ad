"""What the overview reads: spend by model today and this month, the last hour minute by minute, dead
letters by code and whether they grow; each from an index, never a walk over the big tables."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.console import selectors
from apps.runs.models import AttemptOutcome
from tests.console.helpers import attempt_at, dead_letter_at
from tests.factories import make_run

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 10, 15, 30, 20, tzinfo=UTC)


@pytest.fixture
def run(owner, offline_key):
    return make_run(owner, offline_key, [f"essay {i}" for i in range(10)])


# --- spend ------------------------------------------------------------------------------------------

def test_spend_adds_up_today_and_this_month_by_model(run):
    attempt_at(run, NOW - timedelta(hours=1), cost="0.10")
    attempt_at(run, NOW - timedelta(hours=2), cost="0.05", model="claude-sonnet-4-5")
    attempt_at(run, NOW - timedelta(days=3), cost="1.00")
    attempt_at(run, NOW - timedelta(days=30), cost="9.00")  # last month
    spend = selectors.spend_by_model(now=NOW)
    rows = {row.model: (row.today_usd, row.month_usd, row.today_attempts) for row in spend.by_model}
    assert rows == {"claude-haiku-4-5": (Decimal("0.10"), Decimal("1.10"), 1),
                    "claude-sonnet-4-5": (Decimal("0.05"), Decimal("0.05"), 1)}
    assert (spend.today_usd, spend.month_usd) == (Decimal("0.15"), Decimal("1.15"))


def test_a_closed_days_spend_is_summed_once_then_read_from_the_cache(run):
    attempt_at(run, NOW - timedelta(days=3), cost="1.00")
    selectors.spend_by_model(now=NOW)
    with CaptureQueriesContext(connection) as queries:
        again = selectors.spend_by_model(now=NOW)
    assert again.month_usd == Decimal("1.00")
    assert len(queries) == 1  # today's attempts only


def test_yesterday_is_read_live_in_the_minutes_after_midnight(run):
    """Its last results may still be being written: it is not summed for good yet."""
    just_after_midnight = datetime(2026, 12, 10, 0, 2, tzinfo=UTC)
    attempt_at(run, just_after_midnight - timedelta(minutes=5), cost="0.20")
    selectors.spend_by_model(now=just_after_midnight)
    attempt_at(run, just_after_midnight - timedelta(minutes=1), cost="0.30")  # written late
    later = just_after_midnight + timedelta(hours=1)
    assert selectors.spend_by_model(now=later).month_usd == Decimal("0.50")


# --- the last hour ------------------------------------------------------------------------------------

def test_the_last_hour_counts_each_minutes_answers_retries_and_refusals(run):
    minute = NOW.replace(second=0)
    attempt_at(run, minute - timedelta(minutes=1, seconds=-5))
    attempt_at(run, minute - timedelta(minutes=1, seconds=-6))
    attempt_at(run, minute - timedelta(minutes=1, seconds=-7), outcome=AttemptOutcome.FAILED)
    attempt_at(run, minute + timedelta(seconds=3), outcome=AttemptOutcome.RETRY)
    attempt_at(run, minute + timedelta(seconds=4), outcome=AttemptOutcome.THROTTLED, http_status=429)
    attempt_at(run, minute + timedelta(seconds=5), outcome=AttemptOutcome.THROTTLED, http_status=529)
    attempt_at(run, NOW - timedelta(hours=2))  # before the hour
    hour = selectors.per_minute(now=NOW)
    assert (len(hour.minutes), hour.minutes[-1]) == (60, minute)
    assert (hour.succeeded[-2], hour.failed[-2]) == (2, 1)
    assert (hour.retried[-1], hour.throttled_429[-1], hour.overloaded_529[-1]) == (1, 1, 1)
    assert (hour.answered, hour.refused) == (3, 2)


# --- dead letters -----------------------------------------------------------------------------------

def test_dead_letters_by_code_say_their_state_and_whether_they_grow(owner, offline_key):
    run = make_run(owner, offline_key, [f"essay {i}" for i in range(6)])
    for uid in ("b0", "b1", "b2"):
        dead_letter_at(run, uid, NOW - timedelta(minutes=10), code="overloaded_error")
    dead_letter_at(run, "b3", NOW - timedelta(minutes=80), code="overloaded_error", parked=False)
    dead_letter_at(run, "b4", NOW - timedelta(minutes=90), code="invalid_request_error")
    dead_letter_at(run, "b5", NOW - timedelta(minutes=100), code="invalid_request_error")
    dead = selectors.dead_letters(now=NOW)
    rows = {row.error_code: (row.scheduled, row.parked, row.last_hour, row.hour_before, row.trend)
            for row in dead.by_code}
    assert rows == {"overloaded_error": (1, 3, 3, 1, "growing"),
                    "invalid_request_error": (0, 2, 0, 2, "slowing")}
    assert dead.per_hour["overloaded_error"][-1] == 3


def test_resolved_dead_letters_are_not_unresolved(owner, offline_key):
    run = make_run(owner, offline_key, ["a"])
    dead_letter_at(run, "b0", NOW - timedelta(days=3), resolved_at=NOW - timedelta(days=2))
    assert selectors.dead_letters(now=NOW).unresolved == 0


# --- the indexes ------------------------------------------------------------------------------------

def explained(sql: str) -> str:
    """PostgreSQL's plan of a query with sequential scans priced out (for the rest of the test's
    transaction): a query an index can serve then shows that index."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(("function", "table", "index"), [
    (selectors.per_minute, "runs_attempt", "attempt_created_idx"),
    (selectors.spend_by_model, "runs_attempt", "attempt_created_idx"),
    (selectors.dead_letters, "pipeline_failures", "failure_"),
])
def test_the_overviews_queries_over_big_tables_use_an_index(run, function, table, index):
    with CaptureQueriesContext(connection) as captured:
        function(now=NOW)
    queries = [query["sql"] for query in captured.captured_queries if f'FROM "{table}"' in query["sql"]]
    assert queries
    for sql in queries:
        plan = explained(sql)
        assert f"Seq Scan on {table}" not in plan and index in plan, plan
