"""Fan-out and gather through real serving loops and the mock provider over HTTP: each call's segments
become exactly that many children, each summarised once, and each call is gathered once from exactly
its children's summaries, in order."""

import json

import pytest
from django.db.models import Count

from apps.pipelines.models import Pipeline, PipelineItem
from apps.pipelines.services.creation import pipeline_create
from apps.runs.models import Block
from apps.runs.services.submission import BlockSpec
from tests.pipelines.helpers import serve_pipeline, step

pytestmark = pytest.mark.django_db(transaction=True)

# The mock answers an array with one or two items, decided by the text: the counts vary per call.
SEGMENTS = {
    "type": "object",
    "properties": {"segments": {"type": "array", "items": {"type": "string"}}},
    "required": ["segments"],
    "additionalProperties": False,
}
CALLS = {
    f"c{i}": f"Call {i}: the customer asks about invoice {100 + i} and a late delivery." for i in range(30)
}
STEPS = [
    step(
        "segment",
        output_schema=SEGMENTS,
        fan_out="segments",
        prompt_template="Segment: {input}",
        parallelism=4,
    ),
    step("summarise", prompt_template="Summarise: {input}", parallelism=4),
    step("extract", gather=True, input="Summaries of call {metadata.call}: {children}", parallelism=4),
]


def submit_calls(owner, key) -> Pipeline:
    items = [
        BlockSpec(uid=uid, input=text, line=n, metadata={"call": uid})
        for n, (uid, text) in enumerate(CALLS.items(), start=1)
    ]
    return pipeline_create(owner=owner, key=key, steps=STEPS, items=items, name="calls")


def test_fan_out_and_gather_count_right_through_the_serving_loops(owner, mock_key):
    pipeline = serve_pipeline(submit_calls(owner, mock_key))
    assert_fan_out_and_gather_counted_right(pipeline)


def assert_fan_out_and_gather_counted_right(pipeline: Pipeline) -> None:
    """Each call's segments became exactly that many children, each summarised once from its element;
    each call was gathered once, from exactly its children's summaries, in order."""
    assert pipeline.status == "complete"
    runs = {s.name: s.run for s in pipeline.steps.select_related("run")}
    segments = {uid: doc["segments"] for uid, doc in runs["segment"].blocks.values_list("uid", "output_json")}
    assert set(segments) == set(CALLS) and {len(s) for s in segments.values()} <= {1, 2}
    expected_children = {
        f"{uid}#{i}": text for uid, parts in segments.items() for i, text in enumerate(parts)
    }

    # Exactly one child per element, each summarised once, from its element.
    children = dict(
        PipelineItem.objects.filter(pipeline=pipeline, parent__isnull=False).values_list("uid", "input")
    )
    assert children == expected_children
    assert dict(runs["summarise"].blocks.values_list("uid", "input")) == expected_children
    assert not runs["summarise"].blocks.values("uid").annotate(n=Count("id")).filter(n__gt=1).exists()

    # Each call gathered once, from exactly its children's summaries, in order.
    summaries = dict(runs["summarise"].blocks.values_list("uid", "output"))
    extract = dict(runs["extract"].blocks.values_list("uid", "input"))
    assert set(extract) == set(CALLS)
    for uid, parts in segments.items():
        gathered = [summaries[f"{uid}#{i}"] for i in range(len(parts))]
        assert extract[uid] == f"Summaries of call {uid}: {json.dumps(gathered, ensure_ascii=False)}"
    assert {name: (r.total_blocks, r.completed_blocks) for name, r in runs.items()} == {
        "segment": (30, 30),
        "summarise": (len(expected_children), len(expected_children)),
        "extract": (30, 30),
    }
    statuses = dict(
        PipelineItem.objects.filter(pipeline=pipeline).values_list("status").annotate(n=Count("id"))
    )
    assert statuses == {"done": 30 + len(expected_children)}
    assert (
        Block.objects.filter(run__pipeline_step__pipeline=pipeline).exclude(status="succeeded").count() == 0
    )
