"""A database round's writes are committed once, whatever fails after them: a write written twice
would record its calls again as fenced-out attempts and count their tokens and cost twice."""

import asyncio
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError, connections
from django.db.models import Sum

from apps.failures.models import DiagnosticLog
from apps.runs.models import Attempt, Run
from apps.runs.services import blocks_claim
from apps.runs.services.decisions import Outcome
from apps.runs.serving import rounds
from apps.runs.serving.context import load_context
from apps.runs.serving.loop import ServingLoop
from apps.runs.serving.rounds import RoundResult, RoundWork
from apps.runs.serving.slots import HeldWrite, LoopState
from tests.factories import make_run


def answered(run: Run, *, cost: str = "0.001") -> HeldWrite:
    """Every block of the run claimed and answered: results waiting to be written."""
    claim = blocks_claim(run_id=run.pk, limit=100, worker="w")
    outcomes = [Outcome(block_id=b.id, lease_token=claim.lease_token, attempt=b.attempt, output="ok",
                        cost_usd=Decimal(cost))
                for b in claim.blocks]
    return HeldWrite(ctx=load_context(run.pk), outcomes=outcomes)


def attempts_and_cost(run: Run) -> tuple[int, object]:
    rows = Attempt.objects.filter(run=run)
    return rows.count(), rows.aggregate(c=Sum("cost_usd"))["c"]


def failing_for(run: Run, real):
    def record(**kwargs):
        if kwargs["run_id"] == run.pk:
            raise OperationalError("could not serialize access")
        return real(**kwargs)
    return record


@pytest.mark.django_db
def test_a_refresh_failing_after_the_writes_does_not_make_them_written_again(owner, offline_key, monkeypatch):
    run = make_run(owner, offline_key, ["a", "b"])
    work = RoundWork(writes={run.pk: answered(run)}, refresh=True, recover=True)

    def database_gone():
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(rounds, "runs_with_due_work", database_gone)
    result = RoundResult()
    rounds.write_in_database(work, "w", result)

    assert result.unwritten(work) == {}  # nothing for the loop to write a second time
    assert result.reports[run.pk].written == 2
    run.refresh_from_db()
    assert (run.status, run.completed_blocks, Attempt.objects.filter(run=run).count()) == ("complete", 2, 2)


@pytest.mark.django_db
def test_a_failure_to_tell_of_a_failed_write_does_not_write_the_other_runs_again(owner, offline_key,
                                                                                  monkeypatch):
    written, failing = make_run(owner, offline_key, ["a", "b"]), make_run(owner, offline_key, ["c"])
    work = RoundWork(writes={written.pk: answered(written), failing.pk: answered(failing)})
    monkeypatch.setattr(rounds, "outcomes_record", failing_for(failing, rounds.outcomes_record))

    def diagnostics_down(**kwargs):
        raise OperationalError("the diagnostic could not be written either")

    monkeypatch.setattr(rounds, "outcomes_write_failed", diagnostics_down)
    state = LoopState(ceiling=10)
    result = RoundResult()
    rounds.write_in_database(work, "w", result)
    rounds.apply_result(state, work, result, now=0.0)

    assert set(state.writes.by_run) == {failing.pk}  # only the write that did not commit is held again
    monkeypatch.undo()
    rounds.write_in_database(RoundWork(writes=state.writes.take()), "w", RoundResult())
    assert attempts_and_cost(written) == (2, Decimal("0.002"))
    assert attempts_and_cost(failing) == (1, Decimal("0.001"))


@pytest.mark.django_db(transaction=True)
def test_a_round_that_raises_half_way_writes_again_only_what_it_did_not_commit(owner, offline_key,
                                                                                monkeypatch):
    first, second = make_run(owner, offline_key, ["a", "b"]), make_run(owner, offline_key, ["c"])
    work = RoundWork(writes={first.pk: answered(first), second.pk: answered(second)})
    monkeypatch.setattr(rounds, "outcomes_record", failing_for(second, rounds.outcomes_record))

    def bug(held, error):
        raise RuntimeError("a bug after the first write committed")

    monkeypatch.setattr(rounds, "_tell_write_failed", bug)
    loop = ServingLoop(worker="w", slice_seconds=1)
    asyncio.run(loop._run_round(work))
    asyncio.run(sync_to_async(connections.close_all, thread_sensitive=True)())  # the round's thread

    assert set(loop.state.writes.by_run) == {second.pk}
    assert loop.report.written == 2
    monkeypatch.undo()
    rounds.write_in_database(RoundWork(writes=loop.state.writes.take()), "w", RoundResult())
    assert attempts_and_cost(first)[0] == 2
    assert attempts_and_cost(second)[0] == 1


@pytest.mark.django_db
def test_a_write_that_keeps_failing_is_given_up_after_three_tries(owner, offline_key, monkeypatch):
    run = make_run(owner, offline_key, ["a"])
    held = answered(run)
    monkeypatch.setattr(rounds, "outcomes_record", failing_for(run, rounds.outcomes_record))
    state = LoopState(ceiling=10)
    state.writes.hold(held.ctx, held.outcomes, now=0.0)
    tries = 0
    while state.writes:
        work = RoundWork(writes=state.writes.take())
        result = RoundResult()
        rounds.write_in_database(work, "w", result)
        rounds.apply_result(state, work, result, now=0.0)
        tries += 1
    assert tries == rounds.WRITE_ATTEMPTS
    gave_up = DiagnosticLog.objects.filter(event_code="DB_WRITE_FAILED", metadata__gave_up=True)
    assert gave_up.count() == 1


@pytest.mark.django_db
def test_a_failure_after_a_write_commits_does_not_make_it_look_unwritten(owner, offline_key, monkeypatch):
    from apps.runs.services import outcomes

    run = make_run(owner, offline_key, ["a", "b"])
    held = answered(run)

    def key_effects_fail(rec, *, key_revision):
        raise OperationalError("the key row could not be locked")

    monkeypatch.setattr(outcomes, "apply_key_effects", key_effects_fail)
    work = RoundWork(writes={run.pk: held})
    result = RoundResult()
    rounds.write_in_database(work, "w", result)

    assert result.unwritten(work) == {}
    assert attempts_and_cost(run)[0] == 2


@pytest.mark.django_db
def test_blocks_given_back_pack_by_pack_go_back_in_one_transaction(
        owner, offline_key, django_assert_max_num_queries):
    """A loop stopping with hundreds of one-block packs ready gave them back one transaction each,
    holding its results unwritten (and their blocks claimed) behind them for tens of seconds."""
    from apps.runs.models import Block, BlockStatus
    from apps.runs.serving.slots import Release

    run = make_run(owner, offline_key, [f"item {i}" for i in range(40)])
    claim = blocks_claim(run_id=run.pk, limit=100, worker="w")
    state = LoopState(ceiling=100)
    state.releases = [Release(run_id=run.pk, token=claim.lease_token, block_ids=(b.id,))
                      for b in claim.blocks]
    work = rounds.collect_work(state, now=0.0, pack_metrics={}, refresh=False, recover=False)

    with django_assert_max_num_queries(8):
        rounds.write_in_database(work, "w", RoundResult())

    assert Block.objects.filter(run=run, status=BlockStatus.PENDING).count() == 40
