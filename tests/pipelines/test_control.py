"""Cancel, pause and resume a whole pipeline or one step (API, CLI and services), driven through the
run engine's own claim and result write: the pipeline ends exactly once, when no item can move."""

import pytest
from django.core.management import CommandError, call_command

from apps.pipelines.models import PipelineItem
from apps.pipelines.services.control import PipelineStateError, pipeline_cancel, pipeline_pause
from apps.pipelines.services.handoff import pipeline_settle
from apps.runs.models import Run
from apps.runs.services import Outcome, blocks_claim, outcomes_record
from tests.api.conftest import api, fresh_throttles  # noqa: F401 (the API tests' fixtures)
from tests.pipelines.helpers import make_pipeline, step

pytestmark = pytest.mark.django_db(transaction=True)

STEPS = [
    step("draft"),
    step("polish", input="Polish: {steps.draft.output}"),
    step("final", input="Final: {steps.polish.output}"),
]


@pytest.fixture
def pipeline(owner, offline_key):
    return make_pipeline(owner, offline_key, STEPS, {"a": "first", "b": "second", "c": "third"})


def runs(pipeline) -> dict[str, Run]:
    return {s.name: Run.objects.get(pk=s.run_id) for s in pipeline.steps.all()}


def statuses(pipeline) -> dict[str, str]:
    return {name: run.status for name, run in runs(pipeline).items()}


def claim(run: Run, limit: int):
    return blocks_claim(run_id=run.pk, limit=limit, worker="w1")


def succeed(run: Run, claimed, uids=None) -> None:
    outcomes_record(
        run_id=run.pk,
        outcomes=[
            Outcome(block_id=b.id, lease_token=claimed.lease_token, attempt=b.attempt, output=f"out {b.uid}")
            for b in claimed.blocks
            if uids is None or b.uid in uids
        ],
    )


def items(pipeline) -> dict[str, tuple[str, int]]:
    return {i.uid: (i.status, i.position) for i in PipelineItem.objects.filter(pipeline=pipeline)}


def test_canceling_a_pipeline_cancels_every_step_and_it_ends_canceled_once_the_calls_in_flight_are_written(
    pipeline,
):
    draft = runs(pipeline)["draft"]
    first = claim(draft, 1)
    succeed(draft, first)  # a moves to polish
    in_flight = claim(draft, 1)  # b is being called

    pipeline_cancel(pipeline_id=pipeline.pk)
    pipeline.refresh_from_db()
    assert pipeline.status == "canceling"
    assert statuses(pipeline) == {"draft": "canceling", "polish": "canceled", "final": "canceled"}
    assert items(pipeline) == {"a": ("failed", 2), "b": ("moving", 1), "c": ("failed", 1)}

    succeed(draft, in_flight)  # its success meets a canceled next step
    pipeline.refresh_from_db()
    assert (pipeline.status, statuses(pipeline)["draft"]) == ("canceled", "canceled")
    assert items(pipeline)["b"] == ("failed", 1)
    assert (
        "canceled before the item reached it"
        in PipelineItem.objects.get(pipeline=pipeline, uid="b").stop_reason
    )
    ended_at = pipeline.ended_at
    assert ended_at is not None
    assert pipeline_settle(pipeline_id=pipeline.pk) is False  # ends once
    pipeline.refresh_from_db()
    assert (pipeline.status, pipeline.ended_at) == ("canceled", ended_at)
    with pytest.raises(PipelineStateError):
        pipeline_cancel(pipeline_id=pipeline.pk)


def test_a_paused_pipeline_claims_nothing_keeps_handing_on_what_was_in_flight_and_resumes_to_the_end(
    pipeline,
):
    draft = runs(pipeline)["draft"]
    in_flight = claim(draft, 1)
    pipeline_pause(pipeline_id=pipeline.pk)
    assert set(statuses(pipeline).values()) == {"paused"}
    assert runs(pipeline)["draft"].paused_cause == "requested"
    assert claim(draft, 10).blocks == []

    succeed(draft, in_flight)  # handed on into the paused polish, where it waits
    polish = runs(pipeline)["polish"]
    assert (polish.status, polish.total_blocks) == ("paused", 1)
    assert claim(polish, 10).blocks == []

    call_command("pipeline", "resume", str(pipeline.pk))
    pipeline.refresh_from_db()
    assert pipeline.status == "running"
    assert set(statuses(pipeline).values()) == {"running"}
    for name in ("draft", "polish", "final"):
        for _ in range(3):
            run = runs(pipeline)[name]
            succeed(run, claim(run, 10))
    pipeline.refresh_from_db()
    assert pipeline.status == "complete"
    assert items(pipeline) == {"a": ("done", 3), "b": ("done", 3), "c": ("done", 3)}


def test_pausing_or_resuming_twice_is_refused(pipeline):
    pipeline_pause(pipeline_id=pipeline.pk)
    with pytest.raises(PipelineStateError, match="a paused pipeline cannot be paused"):
        pipeline_pause(pipeline_id=pipeline.pk)
    call_command("pipeline", "resume", str(pipeline.pk))
    with pytest.raises(CommandError, match="a running pipeline cannot be resumed"):
        call_command("pipeline", "resume", str(pipeline.pk))


def test_the_api_pauses_and_resumes_one_step_and_cancels_the_whole_pipeline(api, owner, outsider, pipeline):  # noqa: F811
    client = api(owner)
    url = f"/api/v1/pipelines/{pipeline.pk}"
    response = client.post(f"{url}/steps/polish/pause/")
    assert response.status_code == 200, response.data
    assert [(s["name"], s["status"]) for s in response.data["steps"]] == [
        ("draft", "queued"),
        ("polish", "paused"),
        ("final", "queued"),
    ]
    assert response.data["steps"][1]["paused_reason"] == "paused by its owner"
    assert client.post(f"{url}/steps/polish/pause/").status_code == 409
    assert client.post(f"{url}/steps/nope/pause/").status_code == 404
    assert client.post(f"{url}/steps/polish/resume/").status_code == 200
    assert api(outsider).post(f"{url}/cancel/").status_code == 404

    response = client.post(f"{url}/cancel/")
    assert response.status_code == 200, response.data
    assert response.data["status"] == "canceled"  # nothing was in flight: ended at once
    assert response.data["items"]["failed"] == 3
    assert client.post(f"{url}/cancel/").status_code == 409


def test_canceling_one_step_by_the_cli_stops_its_items_and_the_rest_of_the_pipeline_ends(pipeline):
    call_command("pipeline", "cancel", str(pipeline.pk), "--step", "polish")
    draft = runs(pipeline)["draft"]
    succeed(draft, claim(draft, 10))
    pipeline.refresh_from_db()
    assert pipeline.status == "complete"
    assert statuses(pipeline) == {"draft": "complete", "polish": "canceled", "final": "complete"}
    assert set(items(pipeline).values()) == {("failed", 1)}
