"""Recovery of blocks whose worker vanished (lease expiry), and claimed blocks given back unused
(release): where each block goes, what it leaves behind, and what its run counts."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from apps.runs.models import Attempt, Block
from apps.runs.services import blocks_claim, leases_expire, run_cancel
from apps.runs.services.claiming import blocks_release, lease_seconds
from tests.factories import make_run

pytestmark = pytest.mark.django_db


def after_the_lease() -> time_machine.travel:
    """A clock stopped just after every lease taken now has expired."""
    return time_machine.travel(timezone.now() + timedelta(seconds=lease_seconds() + 1), tick=False)


def test_an_expired_lease_sends_its_block_back_to_pending_with_the_attempt_counted(owner, offline_key):
    run = make_run(owner, offline_key, ["a"])
    blocks_claim(run_id=run.pk, limit=1, worker="host:1")
    with after_the_lease():
        assert leases_expire() == 1
        now = timezone.now()
    block = run.blocks.get()
    assert (block.status, block.attempts) == ("pending", 1)
    assert (block.lease_token, block.lease_expires_at) == (None, None)
    assert (block.next_attempt_at, block.finished_at) == (now, None)
    assert (block.error_code, block.error_message) == ("lease_expired", "lease expired; retried")


def test_a_lease_not_yet_expired_is_left_alone(owner, offline_key):
    run = make_run(owner, offline_key, ["a"])
    blocks_claim(run_id=run.pk, limit=1, worker="host:1")
    assert leases_expire() == 0
    assert run.blocks.get().status == "claimed"


def test_blocks_expiring_together_each_go_by_their_own_attempts(owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b", "c"], max_attempts=2)
    Block.objects.filter(run=run, uid="b0").update(attempts=1)  # its last attempt is the next one
    blocks_claim(run_id=run.pk, limit=3, worker="host:1")
    with after_the_lease():
        assert leases_expire() == 3
        now = timezone.now()

    blocks = {b.uid: b for b in run.blocks.all()}
    assert {uid: b.status for uid, b in blocks.items()} == {"b0": "failed", "b1": "pending", "b2": "pending"}
    doomed = blocks["b0"]
    assert (doomed.error_code, doomed.error_message) == ("lease_expired", "lease expired on host:1")
    assert (doomed.finished_at, doomed.lease_token) == (now, None)
    run.refresh_from_db()
    assert (run.status, run.failed_blocks, run.completed_blocks, run.canceled_blocks) == ("running", 1, 0, 0)
    failure = run.failures.get()
    assert (failure.block_id, failure.error_code, failure.attempt_count) == (doomed.pk, "lease_expired", 2)


def test_a_block_whose_worker_left_no_name_says_so_when_it_fails(owner, offline_key):
    run = make_run(owner, offline_key, ["a"], max_attempts=1)
    blocks_claim(run_id=run.pk, limit=1, worker="")
    with after_the_lease():
        leases_expire()
    assert run.blocks.get().error_message == "lease expired on an unknown worker"


def test_every_expired_claim_leaves_an_attempt_saying_the_lease_expired(owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b"], max_attempts=1)
    blocks_claim(run_id=run.pk, limit=2, worker="host:7")
    with after_the_lease():
        leases_expire()
    attempts = Attempt.objects.filter(run=run).order_by("block__block_index")
    assert [(a.block.uid, a.number, a.pass_number, a.outcome, a.accepted, a.error_code, a.error_message,
             a.worker, a.model) for a in attempts] == [
        (uid, 1, 1, "lease_expired", True, "lease_expired", "lease expired on host:7", "host:7", run.model)
        for uid in ("b0", "b1")
    ]


def test_an_expired_lease_in_a_canceling_run_cancels_its_block_and_ends_the_run(owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b"])
    blocks_claim(run_id=run.pk, limit=1, worker="host:1")
    assert run_cancel(run_id=run.pk).status == "canceling"  # b1 canceled at once, b0 in flight
    with after_the_lease():
        assert leases_expire() == 1
        now = timezone.now()
    block = run.blocks.get(uid="b0")
    assert (block.status, block.finished_at, block.error_code) == ("canceled", now, "lease_expired")
    run.refresh_from_db()
    assert (run.status, run.canceled_blocks, run.finished_at) == ("canceled", 2, now)


def test_an_expired_lease_gives_its_budget_reservation_back(owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b"], options={"max_cost_usd": "5"})
    blocks_claim(run_id=run.pk, limit=2, worker="host:1")
    run.refresh_from_db()
    assert run.reserved_usd > 0
    with after_the_lease():
        leases_expire()
    run.refresh_from_db()
    assert run.reserved_usd == Decimal(0)
    assert list(run.blocks.values_list("reserved_usd", flat=True)) == [Decimal(0), Decimal(0)]


def test_blocks_given_back_unused_are_pending_again_with_their_attempt_and_reservation(owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b"], options={"max_cost_usd": "5"})
    claim = blocks_claim(run_id=run.pk, limit=2, worker="host:1")
    assert blocks_release(run_id=run.pk, token=claim.lease_token) == 2
    fields = ("status", "attempts", "pass_attempts", "lease_token", "reserved_usd")
    assert list(run.blocks.values_list(*fields)) == [("pending", 0, 0, None, Decimal(0))] * 2
    run.refresh_from_db()
    assert (run.status, run.reserved_usd) == ("running", Decimal(0))


def test_blocks_given_back_in_a_canceling_run_are_canceled_and_the_run_ends(owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b", "c"], options={"max_cost_usd": "5"})
    claim = blocks_claim(run_id=run.pk, limit=2, worker="host:1")
    run_cancel(run_id=run.pk)
    with time_machine.travel(timezone.now(), tick=False):
        assert blocks_release(run_id=run.pk, token=claim.lease_token, block_ids=[claim.blocks[0].id]) == 1
        now = timezone.now()
    given_back = run.blocks.get(pk=claim.blocks[0].id)
    assert (given_back.status, given_back.lease_token, given_back.finished_at, given_back.reserved_usd) == (
        "canceled", None, now, Decimal(0))
    run.refresh_from_db()
    assert (run.status, run.canceled_blocks) == ("canceling", 2)  # the other claimed block is in flight

    blocks_release(run_id=run.pk, token=claim.lease_token)
    run.refresh_from_db()
    assert (run.status, run.canceled_blocks, run.reserved_usd) == ("canceled", 3, Decimal(0))
