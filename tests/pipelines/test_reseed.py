"""Reseeding a step: the items it takes back go through the later steps again, their later results
marked stale until rewritten; only the affected downstream blocks run again (issue 21)."""

import pytest

from apps.pipelines.models import PipelineItem
from apps.pipelines.selectors import item_paths
from apps.runs.models import Block, Run
from apps.runs.services import Outcome, blocks_claim, outcomes_record
from tests.api.conftest import api, fresh_throttles  # noqa: F401 (the API tests' fixtures)
from tests.pipelines.helpers import make_pipeline, step

pytestmark = pytest.mark.django_db(transaction=True)

STEPS = [
    step("draft"),
    step("polish", input="Polish: {steps.draft.output}"),
    step("final", input="Final: {steps.polish.output}"),
]
OLD_BUILD = "0.9+old"


@pytest.fixture
def pipeline(owner, offline_key):
    return make_pipeline(owner, offline_key, STEPS, {"a": "first", "b": "second", "c": "third"})


def runs(pipeline) -> dict[str, Run]:
    return {s.name: Run.objects.get(pk=s.run_id) for s in pipeline.steps.all()}


def write(run: Run, outputs: dict[str, str]) -> None:
    claim = blocks_claim(run_id=run.pk, limit=100, worker="w1")
    assert sorted(b.uid for b in claim.blocks) == sorted(outputs)
    outcomes_record(
        run_id=run.pk,
        outcomes=[
            Outcome(block_id=b.id, lease_token=claim.lease_token, attempt=b.attempt, output=outputs[b.uid])
            for b in claim.blocks
        ],
    )


def blocks(run: Run) -> dict[str, tuple[str, str, str, int]]:
    return {
        uid: tuple(rest)
        for uid, *rest in Block.objects.filter(run_id=run.pk).values_list(
            "uid", "status", "input", "output", "pass_number"
        )
    }


def stale(pipeline) -> dict[str, list[int]]:
    return dict(PipelineItem.objects.filter(pipeline=pipeline).values_list("uid", "stale_steps"))


@pytest.fixture
def finished(pipeline, settings):
    """Every item through every step; item a's draft written by an older build."""
    version = settings.CONVEYOR["PIPELINE_VERSION"]
    settings.CONVEYOR = {**settings.CONVEYOR, "PIPELINE_VERSION": OLD_BUILD}
    draft = runs(pipeline)["draft"]
    claim = blocks_claim(run_id=draft.pk, limit=1, worker="w1")
    outcomes_record(
        run_id=draft.pk,
        outcomes=[
            Outcome(block_id=claim.blocks[0].id, lease_token=claim.lease_token, attempt=1, output="draft a")
        ],
    )
    settings.CONVEYOR = {**settings.CONVEYOR, "PIPELINE_VERSION": version}
    write(draft, {"b": "draft b", "c": "draft c"})
    write(runs(pipeline)["polish"], {u: f"polished {u}" for u in "abc"})
    write(runs(pipeline)["final"], {u: f"final {u}" for u in "abc"})
    pipeline.refresh_from_db()
    assert pipeline.status == "complete"
    return pipeline


def test_a_reseed_of_step_one_reruns_only_the_affected_items_downstream_blocks(api, owner, finished):  # noqa: F811
    polish_before, final_before = blocks(runs(finished)["polish"]), blocks(runs(finished)["final"])
    response = api(owner).post(
        f"/api/v1/pipelines/{finished.pk}/steps/draft/reseed/",
        {"scope": "filter", "pipeline_version": OLD_BUILD},
        format="json",
    )
    assert response.status_code == 200, response.data
    assert response.data["status"] == "running"
    assert stale(finished) == {"a": [2, 3], "b": [], "c": []}
    paths = {
        row["uid"]: [(p["step"], p["status"], p["stale"]) for p in row["path"]]
        for row in item_paths(finished)
    }
    assert paths["a"] == [
        ("draft", "pending", False),
        ("polish", "succeeded", True),
        ("final", "succeeded", True),
    ]
    assert paths["b"] == [
        ("draft", "succeeded", False),
        ("polish", "succeeded", False),
        ("final", "succeeded", False),
    ]

    write(runs(finished)["draft"], {"a": "draft a, again"})
    polish = runs(finished)["polish"]
    assert blocks(polish)["a"][:2] == ("pending", "Polish: draft a, again")
    assert {u: blocks(polish)[u] for u in "bc"} == {u: polish_before[u] for u in "bc"}
    assert (polish.total_blocks, polish.current_pass, polish.passes.get(number=2).selected_blocks) == (
        3,
        2,
        1,
    )
    assert blocks(runs(finished)["final"]) == final_before  # nothing there yet

    write(polish, {"a": "polished a, again"})
    assert stale(finished)["a"] == [3]
    final = runs(finished)["final"]
    assert blocks(final)["a"][:2] == ("pending", "Final: polished a, again")
    assert {u: blocks(final)[u] for u in "bc"} == {u: final_before[u] for u in "bc"}

    write(final, {"a": "final a, again"})
    finished.refresh_from_db()
    assert finished.status == "complete"
    assert stale(finished) == {"a": [], "b": [], "c": []}
    assert {i.uid: (i.status, i.position) for i in PipelineItem.objects.filter(pipeline=finished)} == {
        u: ("done", 3) for u in "abc"
    }
    # Which outputs came from which version: a's new results are the reseed's pass; b's and c's the first.
    assert {u: b[3] for u, b in blocks(runs(finished)["final"]).items()} == {"a": 2, "b": 1, "c": 1}
    assert {name: (r.total_blocks, r.completed_blocks) for name, r in runs(finished).items()} == {
        "draft": (3, 3),
        "polish": (3, 3),
        "final": (3, 3),
    }


def test_a_reseed_is_refused_while_an_affected_item_is_still_moving_in_a_later_step(api, owner, pipeline):  # noqa: F811
    write(runs(pipeline)["draft"], {u: f"draft {u}" for u in "abc"})
    response = api(owner).post(
        f"/api/v1/pipelines/{pipeline.pk}/steps/draft/reseed/", {"scope": "all"}, format="json"
    )
    assert response.status_code == 409, response.data
    assert "still moving in a later step" in str(response.data)
    draft = runs(pipeline)["draft"]
    assert (draft.status, draft.current_pass, draft.completed_blocks) == ("complete", 1, 3)
    assert stale(pipeline) == {"a": [], "b": [], "c": []}


def test_a_reseed_of_an_unknown_step_is_not_found(api, owner, finished):  # noqa: F811
    response = api(owner).post(
        f"/api/v1/pipelines/{finished.pk}/steps/nope/reseed/", {"scope": "all"}, format="json"
    )
    assert response.status_code == 404


def test_the_cli_reseeds_a_step_by_build_and_refuses_an_empty_selection(finished):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="no block of this run matches"):
        call_command(
            "pipeline",
            "reseed",
            str(finished.pk),
            "--step",
            "polish",
            "--scope",
            "filter",
            "--pipeline-version",
            "no-such-build",
        )
    call_command("pipeline", "reseed", str(finished.pk), "--step", "final")  # the last: nothing downstream
    assert stale(finished) == {"a": [], "b": [], "c": []}
    assert set(PipelineItem.objects.filter(pipeline=finished).values_list("status", "position")) == {
        ("moving", 3)
    }
    write(runs(finished)["final"], {u: f"final {u}, again" for u in "abc"})
    finished.refresh_from_db()
    assert finished.status == "complete"
