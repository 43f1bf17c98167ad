"""Batch mode with real workers and beat: a batch open at the provider survives the worker that
submitted it and a flushed Redis, because its id is in PostgreSQL."""

import pytest

from apps.runs.models import MessageBatch, RunMode
from tests.e2e.conftest import run_status, wait_for
from tests.e2e.test_workers import assert_counts_equal_states
from tests.factories import make_run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def open_batch(run) -> bool:
    return MessageBatch.objects.filter(run=run, status="in_progress").exists()


def test_a_worker_killed_while_a_batch_is_open_loses_nothing(owner, e2e_key, mock_process, stack):
    mock_process.configure(batch_delay_ms=4000)
    stack.worker("doomed", concurrency=1)
    stack.beat()
    run = make_run(owner, e2e_key, [f"essay {i}" for i in range(50)], mode=RunMode.BATCH)
    wait_for(lambda: open_batch(run), timeout=60, what="an open batch", stack=stack)

    stack.kill("doomed")
    stack.worker("survivor")

    wait_for(lambda: run_status(run) == "complete", timeout=90, what="run to complete", stack=stack)
    assert_counts_equal_states(run)
    assert run.completed_blocks == 50
    assert MessageBatch.objects.filter(run=run).count() == 1  # polled on, never submitted again
    assert mock_process.stats()["batches"]["created"] == 1


def test_flushing_redis_while_a_batch_is_open_loses_nothing(owner, e2e_key, mock_process, stack, broker):
    mock_process.configure(batch_delay_ms=3000)
    stack.worker("w1")
    stack.beat()
    run = make_run(owner, e2e_key, [f"essay {i}" for i in range(30)], mode=RunMode.BATCH)
    wait_for(lambda: open_batch(run), timeout=60, what="an open batch", stack=stack)

    broker.flushdb()

    wait_for(lambda: run_status(run) == "complete", timeout=90, what="run to complete", stack=stack)
    assert run.completed_blocks == 30
    assert mock_process.stats()["batches"]["created"] == 1
