"""Dead-letter replay: while a run is active, due rows go back to work with backoff, are resolved when
their block succeeds, and are parked after a bounded number of replays. Finished means finished: an
ended run's rows are parked, and replaying them by hand is a new pass of the run."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.failures.models import PipelineFailure
from apps.failures.services import FailureStateError, failure_resolve
from apps.providers.errors import FailureKind
from apps.runs.models import Block
from apps.runs.services import run_cancel
from apps.runs.services.replay import failure_replay_now, failures_replay_selected, failures_replay_sweep
from apps.runs.signals import run_finished
from apps.runs.tasks import replay_due_failures
from tests.factories import make_run
from tests.failures.helpers import counts, failure_of, settle
from tests.runs.helpers import in_thread, serve_until_settled

BASE = timedelta(seconds=settings.CONVEYOR["FAILURE_REPLAY_BASE_SECONDS"])
MAX_REPLAYS = settings.CONVEYOR["FAILURE_MAX_REPLAYS"]


def failed_run(owner, key, *, blocks: int = 2, fail: tuple[str, ...] = ("b1",), **kwargs):
    """A run still at work (one more block waits for a retry far ahead) with the failed blocks in
    `fail` dead-lettered."""
    run = make_run(owner, key, [f"text {i}" for i in range(blocks + 1)], max_attempts=1, **kwargs)
    waiting = timezone.now() + timedelta(days=30)
    Block.objects.filter(run=run, uid=f"b{blocks}").update(next_attempt_at=waiting)
    return settle(run, fail=set(fail))


def ended_run(owner, key, *, fail: tuple[str, ...] = ("b1",)):
    run = make_run(owner, key, ["text 0", "text 1"], max_attempts=1)
    return settle(run, fail=set(fail))


# --- with the real engine and the mock provider -----------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_beat_task_leaves_an_ended_run_ended(owner, mock_key):
    run = serve_until_settled(
        make_run(owner, mock_key, ["fine", "flaky [[mock:status=500 times=3]]"], max_attempts=3)
    )
    finished_at = run.finished_at
    failure = failure_of(run, "b1")
    assert (failure.next_retry_at, counts(run)) == (None, ("complete", 1, 1, 0))  # parked at the end

    with time_machine.travel(run.finished_at + timedelta(days=1), tick=False):
        assert replay_due_failures() == {"replayed": 0}

    run.refresh_from_db()
    assert (run.status, run.finished_at, run.current_pass) == ("complete", finished_at, 1)


@pytest.mark.django_db(transaction=True)
def test_replaying_an_ended_runs_failure_by_hand_is_a_new_pass_that_keeps_the_first_ones_end(
        owner, mock_key):
    announced: list[tuple] = []
    run_finished.connect(lambda **kw: announced.append((kw["status"], kw["pass_number"])), weak=False,
                         dispatch_uid="test-replay-pass")
    try:
        run = serve_until_settled(
            make_run(owner, mock_key, ["fine", "flaky [[mock:status=500 times=3]]"], max_attempts=3)
        )
        first_end = run.finished_at
        failure = failure_of(run, "b1")

        failure_replay_now(failure_id=failure.pk)
        run = serve_until_settled(run)
    finally:
        run_finished.disconnect(dispatch_uid="test-replay-pass")

    failure.refresh_from_db()
    assert failure.resolved_at is not None
    assert (run.status, run.current_pass, counts(run)) == ("complete", 2, ("complete", 2, 0, 0))
    first, second = run.passes.order_by("number")
    assert (first.finished_at, first.completed_blocks, first.failed_blocks) == (first_end, 1, 1)
    assert (second.scope, second.selected_blocks, second.completed_blocks) == ("replay", 1, 2)
    assert announced == [("complete", 1), ("complete", 2)]
    # Each pass numbers its own attempts: the block's attempt 1 of pass 2 is not "attempt 1" again.
    numbers = list(run.blocks.get(uid="b1").attempt_set.values_list("pass_number", "number"))
    assert numbers == [(1, 1), (1, 2), (1, 3), (2, 1)]


@pytest.mark.django_db(transaction=True)
def test_a_replayed_block_that_fails_again_updates_the_same_failure_row(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, ["broken [[mock:status=500]]"], max_attempts=2))
    failure = failure_of(run, "b0")

    failure_replay_now(failure_id=failure.pk)
    run = serve_until_settled(run)

    assert PipelineFailure.objects.count() == 1
    failure.refresh_from_db()
    assert (failure.resolved_at, failure.replay_count, failure.attempt_count) == (None, 1, 4)
    assert counts(run) == ("complete", 0, 1, 0)


@pytest.mark.django_db
def test_replaying_several_failures_of_an_ended_run_together_is_one_new_pass(owner, offline_key):
    run = ended_run(owner, offline_key, fail=("b0", "b1"))
    report = failures_replay_selected(failure_ids=[failure_of(run, "b0").pk, failure_of(run, "b1").pk])
    assert len(report.replayed) == 2
    run.refresh_from_db()
    assert (run.status, run.current_pass, run.passes.count()) == ("running", 2, 2)


# --- the replay service, with outcomes recorded by the test ------------------------------------------

@pytest.mark.django_db
def test_a_replay_puts_the_block_back_to_pending_with_a_fresh_attempt_budget(owner, offline_key):
    run = failed_run(owner, offline_key)
    failure = failure_of(run, "b1")

    with time_machine.travel(failure.next_retry_at, tick=False):
        assert failures_replay_sweep() == 1

    block = run.blocks.get(uid="b1")
    assert (block.status, block.attempts, block.error_code, block.finished_at) == ("pending", 0, "", None)


@pytest.mark.django_db
def test_a_replay_in_a_running_run_takes_the_block_off_its_failed_count_in_the_same_pass(
        owner, offline_key):
    run = failed_run(owner, offline_key)
    failure = failure_of(run, "b1")

    with time_machine.travel(failure.next_retry_at, tick=False):
        failures_replay_sweep()

    assert counts(run) == ("running", 1, 0, 0)
    assert run.current_pass == 1


@pytest.mark.django_db
def test_a_row_is_not_replayed_before_its_next_retry_at(owner, offline_key):
    run = failed_run(owner, offline_key)
    failure = failure_of(run, "b1")

    with time_machine.travel(failure.next_retry_at - timedelta(seconds=1), tick=False):
        assert failures_replay_sweep() == 0
    assert run.blocks.get(uid="b1").status == "failed"


@pytest.mark.django_db
def test_a_replay_moves_next_retry_at_on_by_the_doubled_backoff(owner, offline_key):
    run = failed_run(owner, offline_key)
    failure = failure_of(run, "b1")
    replayed_at = failure.next_retry_at + timedelta(seconds=5)

    with time_machine.travel(replayed_at, tick=False):
        failures_replay_sweep()

    failure.refresh_from_db()
    assert failure.replay_count == 1
    assert failure.next_retry_at == replayed_at + 2 * BASE


@pytest.mark.django_db
def test_a_replayed_row_is_not_picked_again_by_the_next_sweep(owner, offline_key):
    run = failed_run(owner, offline_key)
    failure = failure_of(run, "b1")
    with time_machine.travel(failure.next_retry_at, tick=False):
        failures_replay_sweep()

    with time_machine.travel(failure.next_retry_at + BASE, tick=False):
        assert failures_replay_sweep() == 0
    assert failure_of(run, "b1").replay_count == 1


@pytest.mark.django_db
def test_a_block_failing_again_after_a_replay_is_rescheduled_from_its_new_failure(owner, offline_key):
    run = failed_run(owner, offline_key)
    failure = failure_of(run, "b1")
    with time_machine.travel(failure.next_retry_at, tick=False):
        failures_replay_sweep()
    failed_again_at = failure.next_retry_at + timedelta(seconds=42)

    with time_machine.travel(failed_again_at, tick=False):
        settle(run, fail={"b1"})

    failure.refresh_from_db()
    assert (failure.replay_count, failure.attempt_count) == (1, 2)
    assert failure.next_retry_at == failed_again_at + 2 * BASE
    assert counts(run) == ("running", 1, 1, 0)


@pytest.mark.django_db
def test_a_failure_is_parked_after_the_bounded_number_of_replays(owner, offline_key):
    run = failed_run(owner, offline_key)
    for _ in range(MAX_REPLAYS):
        due = failure_of(run, "b1").next_retry_at
        with time_machine.travel(due, tick=False):
            assert failures_replay_sweep() == 1
            settle(run, fail={"b1"})

    failure = failure_of(run, "b1")
    assert (failure.replay_count, failure.next_retry_at) == (MAX_REPLAYS, None)
    assert failures_replay_sweep(now=failure.failed_at + timedelta(days=365)) == 0


@pytest.mark.django_db
def test_a_failure_of_a_canceled_run_is_parked_not_replayed(owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b"], max_attempts=1, parallelism=1)
    settle(run, fail={"b0"})
    run_cancel(run_id=run.pk)
    failure = failure_of(run, "b0")

    with time_machine.travel(failure.next_retry_at, tick=False):
        assert failures_replay_sweep() == 0

    failure.refresh_from_db()
    assert (failure.next_retry_at, failure.replay_count) == (None, 0)
    assert counts(run) == ("canceled", 0, 1, 1)


@pytest.mark.django_db
def test_a_parked_failure_can_be_replayed_by_hand(owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b"])
    Block.objects.filter(run=run, uid="b1").update(next_attempt_at=timezone.now() + timedelta(days=30))
    settle(run, fail={"b0"}, code="invalid_request_error", kind=FailureKind.BLOCK_FATAL)
    failure = failure_of(run, "b0")
    assert failure.next_retry_at is None

    failure_replay_now(failure_id=failure.pk)

    failure.refresh_from_db()
    assert (failure.replay_count, failure.next_retry_at) == (1, None)
    assert run.blocks.get(uid="b0").status == "pending"


@pytest.mark.django_db
def test_replaying_a_block_already_back_at_work_is_refused(owner, offline_key):
    run = failed_run(owner, offline_key)
    failure = failure_of(run, "b1")
    scheduled = failure_replay_now(failure_id=failure.pk).next_retry_at

    with pytest.raises(FailureStateError, match="already pending"):
        failure_replay_now(failure_id=failure.pk)
    assert (failure_of(run, "b1").replay_count, failure_of(run, "b1").next_retry_at) == (1, scheduled)


@pytest.mark.django_db
def test_a_resolved_failure_is_never_replayed(owner, offline_key):
    run = failed_run(owner, offline_key)
    failure = failure_of(run, "b1")
    failure_resolve(failure_id=failure.pk, note="known bad input")

    assert failures_replay_sweep(now=failure.next_retry_at + timedelta(days=1)) == 0
    with pytest.raises(FailureStateError, match="already resolved"):
        failure_replay_now(failure_id=failure.pk)
    assert run.blocks.get(uid="b1").status == "failed"


@pytest.mark.django_db
def test_resolving_a_failure_records_the_note_and_takes_it_off_the_schedule(owner, offline_key):
    run = failed_run(owner, offline_key)

    row = failure_resolve(failure_id=failure_of(run, "b1").pk, note="  upstream outage, rerun later ")

    row.refresh_from_db()
    assert (row.resolution_note, row.next_retry_at) == ("upstream outage, rerun later", None)
    assert row.resolved_at is not None


@pytest.mark.django_db
def test_a_failure_cannot_be_resolved_without_a_note(owner, offline_key):
    run = failed_run(owner, offline_key)
    with pytest.raises(ValueError, match="note"):
        failure_resolve(failure_id=failure_of(run, "b1").pk, note="   ")


# --- concurrency --------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_two_concurrent_replay_sweeps_never_replay_a_row_twice(owner, offline_key):
    runs = [failed_run(owner, offline_key, blocks=6, fail=("b0", "b1", "b2", "b3", "b4", "b5"))
            for _ in range(2)]
    now = PipelineFailure.objects.latest("next_retry_at").next_retry_at
    start = threading.Barrier(2)
    replayed: list[int] = []

    def sweep() -> None:
        start.wait(10)
        replayed.append(failures_replay_sweep(now=now))

    threads = [in_thread(sweep) for _ in range(2)]
    for thread in threads:
        thread.join(60)

    assert sum(replayed) == 12
    # Each row replayed once and rescheduled once: none counted twice, none parked by the loser.
    assert set(PipelineFailure.objects.values_list("replay_count", "next_retry_at")) == {(1, now + 2 * BASE)}
    assert [counts(run)[2] for run in runs] == [0, 0]


@pytest.mark.django_db(transaction=True)
def test_a_row_locked_by_another_transaction_is_skipped_not_waited_for(owner, offline_key):
    run = failed_run(owner, offline_key)
    failure = failure_of(run, "b1")
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with transaction.atomic():
            PipelineFailure.objects.select_for_update().get(pk=failure.pk)
            locked.set()
            release.wait(30)

    holder = in_thread(hold_lock)
    try:
        assert locked.wait(10)
        assert failures_replay_sweep(now=failure.next_retry_at) == 0
    finally:
        release.set()
        holder.join(30)
    assert Block.objects.get(pk=failure.block_id).status == "failed"
    assert failures_replay_sweep(now=failure.next_retry_at) == 1
