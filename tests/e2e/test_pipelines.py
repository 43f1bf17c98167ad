"""Pipelines with real Celery workers and beat, the mock provider over HTTP in its own process:
items flow through every step as soon as they can, exactly once, whatever happens to a worker."""

import pytest
from django.db.models import Count, Max, Min

from apps.pipelines.models import Pipeline, PipelineItem
from apps.pipelines.selectors import item_paths
from apps.pipelines.services.creation import pipeline_create
from apps.runs.models import Attempt, Block
from apps.runs.services.submission import BlockSpec
from apps.runs.tasks import serve
from tests.e2e.conftest import wait_for
from tests.e2e.test_workers import assert_counts_equal_states
from tests.factories import MODEL

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# 25 items a call (packing): a thousand items a step in forty calls, so that two shared cores
# finish in well under a minute.
SETTINGS = {"model": MODEL, "parallelism": 16, "max_attempts": 5, "options": {"pack_size": 25}}
STEPS = [
    {"name": "draft", **SETTINGS},
    {"name": "polish", **SETTINGS, "input": "Polish: {steps.draft.output}"},
    {"name": "final", **SETTINGS, "input": "Final: {steps.polish.output}"},
]


def fast_key(e2e_key):
    """The key declares the top tier (its lane fills from the first calls); the mock's headers say
    the same kind of limits, far above what the test asks for."""
    e2e_key.tier = "tier_4"
    e2e_key.save(update_fields=["tier"])
    return e2e_key


def submit(owner, key, n: int) -> Pipeline:
    items = [BlockSpec(uid=f"item-{i:04d}", input=f"essay {i}", line=i + 1) for i in range(n)]
    return pipeline_create(owner=owner, key=key, name="e2e", steps=STEPS, items=items)


def pipeline_status(pipeline: Pipeline) -> str:
    pipeline.refresh_from_db()
    return pipeline.status


def assert_every_item_went_through_every_step_exactly_once(pipeline: Pipeline, n: int) -> None:
    steps = {s.name: s.run for s in pipeline.steps.select_related("run")}
    for run in steps.values():
        assert_counts_equal_states(run)
        assert (run.status, run.total_blocks, run.completed_blocks) == ("complete", n, n)
        # One block per item per step: no handoff was made twice.
        assert (
            not Block.objects.filter(run=run).values("uid").annotate(n=Count("id")).filter(n__gt=1).exists()
        )
    assert dict(
        PipelineItem.objects.filter(pipeline=pipeline).values_list("status").annotate(n=Count("id"))
    ) == {"done": n}
    expected = [("draft", "succeeded"), ("polish", "succeeded"), ("final", "succeeded")]
    paths = {row["uid"]: [(p["step"], p["status"]) for p in row["path"]] for row in item_paths(pipeline)}
    assert len(paths) == n and all(path == expected for path in paths.values())
    # Each block's input is its item's output of the step before.
    sample = Block.objects.get(run=steps["final"], uid="item-0007")
    polished = Block.objects.get(run=steps["polish"], uid="item-0007").output
    assert sample.input == f"Final: {polished}"


def test_a_three_step_pipeline_of_1000_items_completes_each_item_reaching_the_end_while_step_one_runs(
    owner, e2e_key, mock_process, stack
):
    mock_process.configure(latency_ms=5, rpm=100_000, burst_seconds=60)
    # Leases long enough that a busy machine never loses one: no call here takes a second.
    stack.env["TEST_PROVIDER_TIMEOUT_SECONDS"] = "20"
    stack.env["TEST_SERVE_PROCESSES_PER_HOST"] = "2"
    stack.worker("w1")
    stack.worker("w2")
    stack.beat()
    pipeline = submit(owner, fast_key(e2e_key), 1000)
    serve.delay()  # a second serving loop besides the one the submission woke

    wait_for(
        lambda: pipeline_status(pipeline) == "complete",
        timeout=150,
        what="the pipeline to complete",
        stack=stack,
    )

    assert_every_item_went_through_every_step_exactly_once(pipeline, 1000)
    steps = {s.name: s.run_id for s in pipeline.steps.all()}
    first_final = Block.objects.filter(run_id=steps["final"]).aggregate(t=Min("finished_at"))["t"]
    last_draft = Block.objects.filter(run_id=steps["draft"]).aggregate(t=Max("finished_at"))["t"]
    # The first item finished its last step while step 1 was still running.
    assert first_final < last_draft
    assert PipelineItem.objects.filter(pipeline=pipeline, updated_at__lt=last_draft, status="done").exists()


def test_a_worker_killed_mid_pipeline_loses_nothing_and_hands_nothing_on_twice(
    owner, e2e_key, mock_process, stack
):
    mock_process.configure(latency_ms=150, rpm=100_000, burst_seconds=60)
    stack.worker("doomed", concurrency=1)
    stack.beat()
    pipeline = submit(owner, fast_key(e2e_key), 300)
    steps = {s.name: s.run_id for s in pipeline.steps.all()}
    wait_for(
        lambda: (
            Block.objects.filter(run_id=steps["polish"], status="succeeded").count() > 10
            and Block.objects.filter(run_id__in=list(steps.values()), status="claimed").exists()
        ),
        timeout=60,
        what="the doomed worker to be mid-pipeline",
        stack=stack,
    )

    stack.kill("doomed")
    stack.worker("survivor")

    wait_for(
        lambda: pipeline_status(pipeline) == "complete",
        timeout=120,
        what="the pipeline to complete",
        stack=stack,
    )
    assert_every_item_went_through_every_step_exactly_once(pipeline, 300)
    assert Attempt.objects.filter(run_id__in=list(steps.values()), outcome="lease_expired").exists()


def test_fan_out_and_gather_count_right_with_real_workers(owner, e2e_key, mock_process, stack):
    from tests.pipelines.test_flow_fanning import assert_fan_out_and_gather_counted_right, submit_calls

    mock_process.configure(latency_ms=20, rpm=100_000, burst_seconds=60)
    stack.worker("w1")
    stack.beat()
    pipeline = submit_calls(owner, fast_key(e2e_key))

    wait_for(
        lambda: pipeline_status(pipeline) == "complete",
        timeout=120,
        what="the pipeline to complete",
        stack=stack,
    )
    assert_fan_out_and_gather_counted_right(pipeline)
