"""Following a run: the bar says why a run is not moving, log lines do not break it, Ctrl-C detaches."""

import io
import logging
import re
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.redis import broker_redis
from apps.lanes.board import Post, board_key
from apps.lanes.gate import LaneRef, run_blocks_key
from apps.lanes.limits import limit_group
from apps.runs.models import Block, PausedCause, RunStatus
from apps.runs.reporting.progress import follow_run, summary
from apps.runs.selectors import run_waiting_reason
from tests.api.helpers import complete, finish_block, set_status
from tests.factories import make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(owner, offline_key):
    return set_status(make_run(owner, offline_key, ["one", "two"]), RunStatus.RUNNING)


def interrupt(*args: object) -> None:
    raise KeyboardInterrupt


# --- why a run is not moving ------------------------------------------------------------------------

def test_a_paused_run_waits_for_its_cause_and_says_the_reason(run):
    set_status(run, RunStatus.PAUSED, paused_cause=PausedCause.KEY_REJECTED,
               paused_reason="provider refused the key: authentication_error")
    assert run_waiting_reason(run) == (
        "paused: The provider rejected the key (401/403); provider refused the key: authentication_error")


def test_a_run_whose_key_is_throttled_waits_until_the_key_may_call_again(run, offline_key):
    until = timezone.now() + timedelta(seconds=30)
    lane = LaneRef(key_id=offline_key.pk, group=limit_group(run.model))
    broker_redis().hset(lane.hash_key, "until_throttled", int(until.timestamp() * 1000))
    assert run_waiting_reason(run) == (
        f"key throttled by the provider (429) until {timezone.localtime(until):%H:%M:%S} UTC")


def test_a_run_held_back_by_a_workers_ceiling_says_so_and_what_to_change(run, offline_key):
    lane = LaneRef(key_id=offline_key.pk, group=limit_group(run.model))
    post = Post(worker="host-1:1", expires_ms=int(time.time() * 1000) + 5000, ceiling_bound=256,
                bound_by="SERVE_MAX_IN_FLIGHT")
    broker_redis().hset(board_key(lane), "host-1:1", post.encode())
    assert run_waiting_reason(run) == ("waiting on: this host's in-flight ceiling (256 calls; "
                                       "SERVE_MAX_IN_FLIGHT) — raise it or add workers/hosts")


def test_a_run_whose_blocks_all_wait_for_a_retry_says_until_when(run):
    first = timezone.now() + timedelta(seconds=20)
    Block.objects.filter(run=run, uid="b0").update(next_attempt_at=first)
    Block.objects.filter(run=run, uid="b1").update(next_attempt_at=first + timedelta(seconds=40))
    assert run_waiting_reason(run) == f"waiting for retries until {timezone.localtime(first):%H:%M:%S} UTC"


def test_a_run_with_due_work_is_not_waiting_for_anything(run):
    Block.objects.filter(run=run, uid="b0").update(next_attempt_at=timezone.now() + timedelta(seconds=20))
    assert run_waiting_reason(run) is None


def test_the_progress_bar_shows_why_a_paused_run_is_not_moving(run):
    set_status(run, RunStatus.PAUSED, paused_cause=PausedCause.BUDGET, paused_reason="budget of $1 spent")
    out = io.StringIO()
    follow_run(run.pk, out=out)
    assert "paused: The run's budget is spent; budget of $1 spent" in out.getvalue()


def test_the_progress_bar_shows_the_runs_calls_in_flight_and_its_lane(run, monkeypatch):
    """The same snapshot as the live progress stream (apps/runs/reporting/live.py)."""
    broker_redis().zadd(run_blocks_key(run.pk), {"b0": (time.time() + 60) * 1000})
    monkeypatch.setattr("apps.runs.reporting.progress.time.sleep", interrupt)
    out = io.StringIO()
    follow_run(run.pk, out=out)
    assert "running, 0 failed, $0.00 | 1 in flight | lane 0" in out.getvalue()


# --- following ---------------------------------------------------------------------------------------

def test_following_returns_once_the_run_settles(run):
    complete(run)
    followed = follow_run(run.pk, out=io.StringIO())
    assert (followed.run.status, followed.detached) == ("complete", False)


def test_ctrl_c_detaches_saying_the_run_goes_on_and_how_to_follow_it_again(run, monkeypatch):
    monkeypatch.setattr("apps.runs.reporting.progress.time.sleep", interrupt)
    out = io.StringIO()
    followed = follow_run(run.pk, out=out)
    assert followed.detached
    assert (f"Detached: run {run.pk} goes on without you. Follow it again with: "
            f"uv run python manage.py runs follow {run.pk}") in out.getvalue()
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_a_follow_attached_mid_run_does_not_count_what_was_done_before_as_its_rate(owner, offline_key):
    run = set_status(make_run(owner, offline_key, [f"essay {i}" for i in range(1000)]), RunStatus.RUNNING,
                     completed_blocks=530)
    out = io.StringIO()
    follow_run(run.pk, out=out, stop_when=(RunStatus.RUNNING,))
    rates = [float(rate) for rate in re.findall(r"([\d.]+)block/s", out.getvalue())]
    assert "530/1000" in out.getvalue()
    assert all(rate < 1 for rate in rates), out.getvalue()


def test_a_log_line_while_following_is_written_on_a_line_of_its_own(run, monkeypatch):
    """Not glued to the bar: tqdm clears the bar, writes the line, and draws the bar again below it."""
    screen = io.StringIO()
    monkeypatch.setattr("sys.stderr", screen)
    handler = logging.StreamHandler(screen)
    root = logging.getLogger()
    root.addHandler(handler)
    ticks = iter([lambda: logging.getLogger("apps.somewhere").warning("a worker said hello"), interrupt])
    monkeypatch.setattr("apps.runs.reporting.progress.time.sleep", lambda seconds: next(ticks)())
    try:
        follow_run(run.pk, out=screen)
    finally:
        root.removeHandler(handler)
    assert re.search(r"(^|[\r\n])a worker said hello\n", screen.getvalue()), screen.getvalue()


# --- the summary ------------------------------------------------------------------------------------

def test_the_summary_says_where_the_failures_are_and_how_to_export(run):
    finish_block(run, "b0", "failed", error_code="max_tokens")
    finish_block(run, "b1", "succeeded", output="ok")
    text = summary(complete(run))
    assert f"1 max_tokens: see uv run python manage.py runs show {run.pk}" in text
    assert f"results    uv run python manage.py export {run.pk} > results.jsonl" in text


def test_a_follow_that_cannot_leave_the_run_going_says_so_instead(run, monkeypatch):
    """The demo drives its run in-process: Ctrl-C there stops the run, and its line says that."""
    monkeypatch.setattr("apps.runs.reporting.progress.time.sleep", interrupt)
    out = io.StringIO()
    follow_run(run.pk, out=out, detach_line="Interrupted: the run stops here.")
    assert "Interrupted: the run stops here." in out.getvalue()
    assert "goes on without you" not in out.getvalue()
