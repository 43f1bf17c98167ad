"""A block that failed for good stops its item; replaying it from the dead-letter table, when it then
succeeds, continues the item downstream exactly as a first success would (issue 21)."""

import pytest

from apps.failures.models import PipelineFailure
from apps.pipelines.models import PipelineItem
from apps.providers.errors import FailureKind, ProviderFailure
from apps.runs.models import Block, Run
from apps.runs.services import Outcome, blocks_claim, outcomes_record
from apps.runs.services.replay import failure_replay_now, failures_replay_selected
from tests.pipelines.helpers import make_pipeline, step

pytestmark = pytest.mark.django_db(transaction=True)

THREE_STEPS = [
    step("draft"),
    step("polish", input="Polish: {steps.draft.output}"),
    step("final", input="Final: {steps.polish.output}"),
]


def runs(pipeline) -> dict[str, Run]:
    return {s.name: Run.objects.get(pk=s.run_id) for s in pipeline.steps.all()}


def write(run: Run, results: dict[str, str | None]) -> None:
    """Claim every due block of the run and write its result: text, or None for a terminal failure."""
    claim = blocks_claim(run_id=run.pk, limit=100, worker="w1")
    outcomes_record(
        run_id=run.pk,
        outcomes=[
            Outcome(block_id=b.id, lease_token=claim.lease_token, attempt=b.attempt, output=results[b.uid])
            if results[b.uid] is not None
            else Outcome(
                block_id=b.id,
                lease_token=claim.lease_token,
                attempt=b.attempt,
                failure=ProviderFailure(FailureKind.BLOCK_FATAL, "invalid_request_error", "refused"),
            )
            for b in claim.blocks
        ],
    )


def item(pipeline, uid: str) -> tuple[str, int]:
    found = PipelineItem.objects.get(pipeline=pipeline, uid=uid)
    return found.status, found.position


def failure_of(run: Run, uid: str) -> PipelineFailure:
    return PipelineFailure.objects.get(block__run=run, block__uid=uid, resolved_at__isnull=True)


@pytest.fixture
def pipeline(owner, offline_key):
    return make_pipeline(owner, offline_key, THREE_STEPS, {"a": "first", "b": "second"})


def test_a_replayed_block_that_succeeds_while_the_pipeline_runs_continues_its_item(pipeline):
    write(runs(pipeline)["draft"], {"a": "draft a", "b": None})
    assert item(pipeline, "b") == ("failed", 1)

    failure_replay_now(failure_id=failure_of(runs(pipeline)["draft"], "b").pk)
    assert item(pipeline, "b") == ("failed", 1)  # replayed, not yet succeeded
    write(runs(pipeline)["draft"], {"b": "draft b"})

    assert item(pipeline, "b") == ("moving", 2)
    assert PipelineItem.objects.get(pipeline=pipeline, uid="b").stop_reason == ""
    polish = runs(pipeline)["polish"]
    assert sorted(polish.blocks.values_list("uid", "input")) == [
        ("a", "Polish: draft a"),
        ("b", "Polish: draft b"),
    ]
    assert polish.total_blocks == 2


def test_replaying_a_failure_after_the_pipeline_ended_continues_the_item_through_every_later_step(pipeline):
    write(runs(pipeline)["draft"], {"a": "draft a", "b": None})
    write(runs(pipeline)["polish"], {"a": "polished a"})
    write(runs(pipeline)["final"], {"a": "final a"})
    pipeline.refresh_from_db()
    assert pipeline.status == "complete"
    assert {name: r.status for name, r in runs(pipeline).items()} == {
        "draft": "complete",
        "polish": "complete",
        "final": "complete",
    }

    failures_replay_selected(failure_ids=[failure_of(runs(pipeline)["draft"], "b").pk])
    write(runs(pipeline)["draft"], {"b": "draft b"})
    pipeline.refresh_from_db()
    assert (pipeline.status, pipeline.ended_at) == ("running", None)
    # The ended step works again as a new pass of exactly the arriving block.
    polish = runs(pipeline)["polish"]
    assert (polish.status, polish.current_pass, polish.total_blocks) == ("running", 2, 2)
    assert polish.passes.get(number=2).selected_blocks == 1

    write(runs(pipeline)["polish"], {"b": "polished b"})
    write(runs(pipeline)["final"], {"b": "final b"})
    pipeline.refresh_from_db()
    assert pipeline.status == "complete"
    assert item(pipeline, "b") == ("done", 3)
    assert list(
        Block.objects.filter(run=runs(pipeline)["final"])
        .order_by("uid")
        .values_list("uid", "input", "output")
    ) == [("a", "Final: polished a", "final a"), ("b", "Final: polished b", "final b")]
    assert {name: (r.status, r.completed_blocks, r.failed_blocks) for name, r in runs(pipeline).items()} == {
        "draft": ("complete", 2, 0),
        "polish": ("complete", 2, 0),
        "final": ("complete", 2, 0),
    }
    assert failure_of_resolved(runs(pipeline)["draft"], "b")


def failure_of_resolved(run: Run, uid: str) -> bool:
    return PipelineFailure.objects.filter(block__run=run, block__uid=uid, resolved_at__isnull=False).exists()


def test_a_replayed_block_that_fails_again_leaves_its_item_stopped_and_hands_nothing_on(pipeline):
    write(runs(pipeline)["draft"], {"a": "draft a", "b": None})
    failure_replay_now(failure_id=failure_of(runs(pipeline)["draft"], "b").pk)
    write(runs(pipeline)["draft"], {"b": None})
    assert item(pipeline, "b") == ("failed", 1)
    assert list(runs(pipeline)["polish"].blocks.values_list("uid", flat=True)) == ["a"]
