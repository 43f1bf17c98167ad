"""The serving loop's database hop: its writes are committed once, whatever fails after them."""

import pytest
from django.db import OperationalError

from apps.runs.models import Attempt
from apps.runs.services import blocks_claim
from apps.runs.services.decisions import Outcome
from apps.runs.serving import server
from apps.runs.serving.context import load_context
from tests.factories import make_run

pytestmark = pytest.mark.django_db


def test_a_refresh_failing_after_the_writes_does_not_make_them_written_again(owner, offline_key, monkeypatch):
    run = make_run(owner, offline_key, ["a", "b"])
    claim = blocks_claim(run_id=run.pk, limit=2, worker="w")
    outcomes = [Outcome(block_id=b.id, lease_token=claim.lease_token, attempt=b.attempt, output="ok")
                for b in claim.blocks]

    def database_gone():
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(server, "runs_with_due_work", database_gone)
    work = server.HopWork(writes={run.pk: (outcomes, load_context(run.pk))}, refresh=True, recover=True)
    result = server._hop(work, "w")

    assert result.failed_writes == {}  # nothing for the loop to write a second time
    assert result.reports[run.pk].written == 2
    run.refresh_from_db()
    assert (run.status, run.completed_blocks, Attempt.objects.filter(run=run).count()) == ("complete", 2, 2)
