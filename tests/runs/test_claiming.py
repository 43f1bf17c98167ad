import threading

import pytest

from apps.runs.models import Block
from apps.runs.services import blocks_claim, leases_expire, outcomes_record
from apps.runs.services.decisions import Outcome
from tests.factories import make_run
from tests.runs.helpers import in_thread


@pytest.mark.django_db
def test_blocks_are_claimed_in_block_index_order(owner, offline_key):
    run = make_run(owner, offline_key, [f"text {i}" for i in range(5)], parallelism=10)
    first = blocks_claim(run_id=run.pk, limit=2, worker="w")
    second = blocks_claim(run_id=run.pk, limit=2, worker="w")
    assert [b.uid for b in first.blocks] == ["b0", "b1"]
    assert [b.uid for b in second.blocks] == ["b2", "b3"]
    assert first.lease_token != second.lease_token


@pytest.mark.django_db
def test_a_claim_never_exceeds_the_runs_parallelism(owner, offline_key):
    run = make_run(owner, offline_key, [f"text {i}" for i in range(10)], parallelism=3)
    assert len(blocks_claim(run_id=run.pk, limit=10, worker="w").blocks) == 3
    assert blocks_claim(run_id=run.pk, limit=10, worker="w").blocks == []


@pytest.mark.django_db
def test_a_claim_cut_short_by_the_runs_parallelism_says_so(owner, offline_key):
    run = make_run(owner, offline_key, [f"text {i}" for i in range(10)], parallelism=3)
    assert blocks_claim(run_id=run.pk, limit=2, worker="w").at_parallelism is False
    cut = blocks_claim(run_id=run.pk, limit=5, worker="w")
    assert (len(cut.blocks), cut.at_parallelism) == (1, True)
    assert blocks_claim(run_id=run.pk, limit=5, worker="w").at_parallelism is True


@pytest.mark.django_db
def test_a_claim_short_of_due_blocks_is_not_at_the_runs_parallelism(owner, offline_key):
    run = make_run(owner, offline_key, [f"text {i}" for i in range(2)], parallelism=3)
    short = blocks_claim(run_id=run.pk, limit=5, worker="w")
    assert (len(short.blocks), short.at_parallelism) == (2, False)


@pytest.mark.django_db
def test_a_claim_counts_an_attempt_and_starts_the_run(owner, offline_key):
    run = make_run(owner, offline_key, ["x"])
    claimed = blocks_claim(run_id=run.pk, limit=1, worker="w").blocks[0]
    assert claimed.attempt == 1
    run.refresh_from_db()
    assert run.status == "running"
    assert run.started_at is not None


@pytest.mark.django_db(transaction=True)
def test_concurrent_claimers_never_claim_the_same_block(owner, offline_key):
    run = make_run(owner, offline_key, [f"text {i}" for i in range(300)], parallelism=300)
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while True:
            claim = blocks_claim(run_id=run.pk, limit=7, worker=name)
            if not claim.blocks:
                return
            with lock:
                claimed.extend(b.id for b in claim.blocks)

    threads = [in_thread(claimer, f"w{i}") for i in range(6)]
    for thread in threads:
        thread.join(60)
    assert len(claimed) == 300
    assert len(set(claimed)) == 300
    assert Block.objects.filter(run=run, status="claimed").count() == 300


@pytest.mark.django_db
def test_a_worker_whose_lease_was_taken_over_cannot_write(owner, offline_key):
    run = make_run(owner, offline_key, ["x"])
    stale = blocks_claim(run_id=run.pk, limit=1, worker="slow")
    Block.objects.filter(run=run).update(lease_expires_at="2000-01-01T00:00:00Z")
    assert leases_expire() == 1
    fresh = blocks_claim(run_id=run.pk, limit=1, worker="fast")

    late = outcomes_record(run_id=run.pk, outcomes=[
        Outcome(block_id=stale.blocks[0].id, lease_token=stale.lease_token, attempt=1, output="stale")
    ])
    on_time = outcomes_record(run_id=run.pk, outcomes=[
        Outcome(block_id=fresh.blocks[0].id, lease_token=fresh.lease_token, attempt=2, output="fresh")
    ])

    assert (late.written, late.fenced_out) == (0, 1)
    assert (on_time.written, on_time.fenced_out) == (1, 0)
    run.refresh_from_db()
    block = run.blocks.get()
    assert block.output == "fresh"
    assert run.completed_blocks == 1
    assert run.status == "complete"
    assert list(block.attempt_set.values_list("outcome", "accepted").order_by("id")) == [
        ("lease_expired", True), ("succeeded", False), ("succeeded", True)
    ]


@pytest.mark.django_db
def test_a_block_whose_lease_expires_on_its_last_attempt_is_dead_lettered(owner, offline_key):
    run = make_run(owner, offline_key, ["x"], max_attempts=1)
    blocks_claim(run_id=run.pk, limit=1, worker="doomed")
    Block.objects.filter(run=run).update(lease_expires_at="2000-01-01T00:00:00Z")
    leases_expire()
    run.refresh_from_db()
    assert run.blocks.get().status == "failed"
    assert (run.failed_blocks, run.status) == (1, "complete")
    assert run.failures.get().error_code == "lease_expired"
