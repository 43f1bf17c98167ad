"""The handoff, driven by hand through the run engine's own claim and result write (no provider):
a step's success creates its item's next block exactly once, whatever happens to the write."""

import pytest

from apps.pipelines.models import PipelineItem
from apps.providers.errors import FailureKind, ProviderFailure
from apps.runs.models import Block, Run
from apps.runs.services import Outcome, blocks_claim, leases_expire, outcomes_record
from apps.runs.services import outcomes as outcomes_module
from tests.pipelines.helpers import make_pipeline, step

pytestmark = pytest.mark.django_db(transaction=True)

TWO_STEPS = [step("draft"), step("polish", input="Polish this: {steps.draft.output}")]


@pytest.fixture
def pipeline(owner, offline_key):
    return make_pipeline(owner, offline_key, TWO_STEPS, {"a": "first item", "b": "second item"})


def runs(pipeline) -> dict[str, Run]:
    return {s.name: Run.objects.get(pk=s.run_id) for s in pipeline.steps.all()}


def claim_one(run: Run, worker: str = "w1"):
    claim = blocks_claim(run_id=run.pk, limit=1, worker=worker)
    return claim.blocks[0], claim.lease_token


def succeed(run: Run, block, token, output: str = "a draft"):
    return outcomes_record(run_id=run.pk, outcomes=[
        Outcome(block_id=block.id, lease_token=token, attempt=block.attempt, output=output)])


def test_a_success_creates_the_items_next_block_with_its_rendered_input(pipeline):
    draft = runs(pipeline)["draft"]
    block, token = claim_one(draft)
    succeed(draft, block, token, output="a draft of a")
    polish = runs(pipeline)["polish"]
    assert list(polish.blocks.values_list("uid", "input")) == [(block.uid, "Polish this: a draft of a")]
    assert polish.total_blocks == 1
    assert PipelineItem.objects.get(pipeline=pipeline, uid=block.uid).position == 2


def test_a_success_written_again_creates_no_second_block(pipeline):
    draft = runs(pipeline)["draft"]
    block, token = claim_one(draft)
    succeed(draft, block, token)
    again = succeed(draft, block, token)
    assert (again.written, again.fenced_out) == (0, 1)
    assert Block.objects.filter(run=runs(pipeline)["polish"], uid=block.uid).count() == 1
    assert runs(pipeline)["polish"].total_blocks == 1


def test_a_fenced_out_success_creates_nothing_and_the_lease_holders_creates_one(pipeline):
    draft = runs(pipeline)["draft"]
    stale_block, stale_token = claim_one(draft, "slow")
    Block.objects.filter(pk=stale_block.id).update(lease_expires_at="2000-01-01T00:00:00Z")
    assert leases_expire() == 1
    fresh_block, fresh_token = claim_one(draft, "fast")
    assert fresh_block.id == stale_block.id

    late = succeed(draft, stale_block, stale_token, output="stale")
    assert late.fenced_out == 1
    assert not runs(pipeline)["polish"].blocks.exists()

    succeed(draft, fresh_block, fresh_token, output="fresh")
    assert list(runs(pipeline)["polish"].blocks.values_list("input", flat=True)) == ["Polish this: fresh"]


def test_a_result_write_that_rolls_back_hands_nothing_on(pipeline, monkeypatch):
    draft = runs(pipeline)["draft"]
    block, token = claim_one(draft)

    def crash(rec) -> None:
        raise RuntimeError("the database went away after the handoff")

    monkeypatch.setattr(outcomes_module, "STEPS", (*outcomes_module.STEPS, crash))
    with pytest.raises(RuntimeError):
        succeed(draft, block, token)
    assert not runs(pipeline)["polish"].blocks.exists()
    assert PipelineItem.objects.get(pipeline=pipeline, uid=block.uid).position == 1

    monkeypatch.undo()
    succeed(draft, block, token)
    assert runs(pipeline)["polish"].blocks.count() == 1


def test_a_block_that_fails_for_good_stops_its_item_and_the_pipeline_still_ends(pipeline):
    draft = runs(pipeline)["draft"]
    claim = blocks_claim(run_id=draft.pk, limit=2, worker="w1")
    good, bad = claim.blocks
    outcomes_record(run_id=draft.pk, outcomes=[
        Outcome(block_id=good.id, lease_token=claim.lease_token, attempt=1, output="fine"),
        Outcome(block_id=bad.id, lease_token=claim.lease_token, attempt=1,
                failure=ProviderFailure(FailureKind.BLOCK_FATAL, "invalid_request_error", "too long")),
    ])
    item = PipelineItem.objects.get(pipeline=pipeline, uid=bad.uid)
    assert (item.status, item.position) == ("failed", 1)
    assert "invalid_request_error" in item.stop_reason

    polish = runs(pipeline)["polish"]
    block, token = claim_one(polish)
    succeed(polish, block, token, output="polished")
    pipeline.refresh_from_db()
    assert (runs(pipeline)["draft"].status, runs(pipeline)["polish"].status) == ("complete", "complete")
    assert pipeline.status == "complete"
    assert PipelineItem.objects.get(pipeline=pipeline, uid=good.uid).status == "done"


def test_when_every_item_fails_in_step_one_the_later_steps_end_empty(pipeline):
    draft = runs(pipeline)["draft"]
    claim = blocks_claim(run_id=draft.pk, limit=2, worker="w1")
    outcomes_record(run_id=draft.pk, outcomes=[
        Outcome(block_id=b.id, lease_token=claim.lease_token, attempt=1,
                failure=ProviderFailure(FailureKind.BLOCK_FATAL, "invalid_request_error", "no"))
        for b in claim.blocks])
    pipeline.refresh_from_db()
    assert pipeline.status == "complete"
    assert (runs(pipeline)["polish"].status, runs(pipeline)["polish"].total_blocks) == ("complete", 0)


def test_a_step_that_is_no_later_steps_is_not_held_open(pipeline):
    assert {name: run.held_open for name, run in runs(pipeline).items()} == {"draft": False, "polish": True}


def test_beats_settle_releases_a_step_that_a_lost_after_commit_settle_left_held(pipeline, monkeypatch):
    from apps.pipelines.services import handoff
    from apps.pipelines.tasks import settle

    monkeypatch.setattr(handoff, "pipeline_settle", lambda **kwargs: False)  # the process died after commit
    draft = runs(pipeline)["draft"]
    claim = blocks_claim(run_id=draft.pk, limit=2, worker="w1")
    outcomes_record(run_id=draft.pk, outcomes=[
        Outcome(block_id=b.id, lease_token=claim.lease_token, attempt=1,
                failure=ProviderFailure(FailureKind.BLOCK_FATAL, "invalid_request_error", "no"))
        for b in claim.blocks])
    assert runs(pipeline)["polish"].held_open
    monkeypatch.undo()

    assert settle() == 1
    pipeline.refresh_from_db()
    assert (pipeline.status, runs(pipeline)["polish"].status) == ("complete", "complete")


def test_canceling_a_step_stops_the_items_in_it_and_those_still_coming_and_the_pipeline_ends(
        owner, offline_key):
    from apps.runs.services import run_cancel

    steps = [*TWO_STEPS, step("final", input="{steps.polish.output}")]
    pipeline = make_pipeline(owner, offline_key, steps, {"a": "first item", "b": "second item"})
    draft = runs(pipeline)["draft"]
    claim = blocks_claim(run_id=draft.pk, limit=2, worker="w1")
    first, second = claim.blocks
    succeed(draft, first, claim.lease_token)

    run_cancel(run_id=runs(pipeline)["polish"].pk)
    succeed(draft, second, claim.lease_token)

    pipeline.refresh_from_db()
    items = {i.uid: (i.status, i.position, i.stop_reason)
             for i in PipelineItem.objects.filter(pipeline=pipeline)}
    assert items[first.uid][:2] == ("failed", 2) and "canceled" in items[first.uid][2]
    assert items[second.uid] == ("failed", 1, "step polish was canceled before the item reached it")
    assert {name: run.status for name, run in runs(pipeline).items()} == {
        "draft": "complete", "polish": "canceled", "final": "complete"}
    assert pipeline.status == "complete"
