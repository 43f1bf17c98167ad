"""Fan-out and gather (issue 21): an array field of a step's answer becomes child items that go on
alone; a gather step takes their parent back once every child has settled, exactly once."""

import json

import pytest

from apps.pipelines.models import PipelineItem
from apps.pipelines.selectors import item_paths, pipeline_rollup
from apps.providers.errors import FailureKind, ProviderFailure
from apps.runs.models import Block, Run
from apps.runs.services import Outcome, blocks_claim, outcomes_record
from tests.api.conftest import api, fresh_throttles  # noqa: F401 (the API tests' fixtures)
from tests.factories import MODEL
from tests.pipelines.helpers import make_pipeline, step

pytestmark = pytest.mark.django_db(transaction=True)

SEGMENTS = {
    "type": "object",
    "properties": {"segments": {"type": "array", "items": {"type": "string"}}},
    "required": ["segments"],
    "additionalProperties": False,
}
STEPS = [
    step("segment", output_schema=SEGMENTS, fan_out="segments"),
    step("summarise", prompt_template="Summarise: {input}"),
    step("extract", gather=True, prompt_template="Claims in: {input}"),
]


@pytest.fixture
def client(api, owner):  # noqa: F811
    return api(owner)


@pytest.fixture
def pipeline(owner, offline_key):
    return make_pipeline(owner, offline_key, STEPS, {"a": "call a", "b": "call b", "c": "call c"})


def runs(pipeline) -> dict[str, Run]:
    return {s.name: Run.objects.get(pk=s.run_id) for s in pipeline.steps.all()}


def write(run: Run, results: dict[str, object]) -> None:
    """Claim the run's due blocks and write these (a dict: structured answer; a str: text; None: a
    terminal failure); blocks not named are given back."""
    claim = blocks_claim(run_id=run.pk, limit=100, worker="w1")
    outcomes = []
    for b in claim.blocks:
        if b.uid not in results:
            continue
        result = results[b.uid]
        if result is None:
            outcomes.append(
                Outcome(
                    block_id=b.id,
                    lease_token=claim.lease_token,
                    attempt=b.attempt,
                    failure=ProviderFailure(FailureKind.BLOCK_FATAL, "invalid_request_error", "no"),
                )
            )
        elif isinstance(result, dict):
            outcomes.append(
                Outcome(
                    block_id=b.id,
                    lease_token=claim.lease_token,
                    attempt=b.attempt,
                    output=json.dumps(result),
                    output_json=result,
                )
            )
        else:
            outcomes.append(
                Outcome(block_id=b.id, lease_token=claim.lease_token, attempt=b.attempt, output=str(result))
            )
    outcomes_record(run_id=run.pk, outcomes=outcomes)
    Block.objects.filter(run_id=run.pk, status="claimed").update(
        status="pending", lease_token=None, lease_expires_at=None
    )


def items(pipeline) -> dict[str, tuple[str, int, str | None]]:
    return {
        i.uid: (i.status, i.position, i.parent.uid if i.parent else None)
        for i in PipelineItem.objects.filter(pipeline=pipeline).select_related("parent")
    }


def test_fan_out_makes_a_child_per_element_and_gather_takes_each_parent_back_once(pipeline):
    write(
        runs(pipeline)["segment"],
        {
            "a": {"segments": ["a one", "a two", "a three"]},
            "b": {"segments": ["b one", "b two"]},
            "c": {"segments": []},
        },
    )
    assert items(pipeline) == {
        "a": ("fanned_out", 1, None),
        "b": ("fanned_out", 1, None),
        "c": ("failed", 1, None),
        "a#0": ("moving", 2, "a"),
        "a#1": ("moving", 2, "a"),
        "a#2": ("moving", 2, "a"),
        "b#0": ("moving", 2, "b"),
        "b#1": ("moving", 2, "b"),
    }
    assert "no child" in PipelineItem.objects.get(pipeline=pipeline, uid="c").stop_reason
    summarise = runs(pipeline)["summarise"]
    assert dict(summarise.blocks.values_list("uid", "input")) == {
        "a#0": "a one",
        "a#1": "a two",
        "a#2": "a three",
        "b#0": "b one",
        "b#1": "b two",
    }

    write(summarise, {"a#0": "sum a0", "a#1": "sum a1", "a#2": None, "b#0": "sum b0"})
    extract = runs(pipeline)["extract"]
    # a's children have all settled (one failed): gathered from the two that are done; b waits for b#1.
    assert dict(extract.blocks.values_list("uid", "input")) == {"a": '["sum a0", "sum a1"]'}
    assert items(pipeline)["a"] == ("moving", 3, None) and items(pipeline)["b"] == ("fanned_out", 1, None)

    write(summarise, {"b#1": "sum b1"})
    assert dict(extract.blocks.values_list("uid", "input")) == {
        "a": '["sum a0", "sum a1"]',
        "b": '["sum b0", "sum b1"]',
    }
    write(extract, {"a": "claims a", "b": "claims b"})
    pipeline.refresh_from_db()
    assert pipeline.status == "complete"
    assert pipeline_rollup(pipeline)["items"] == {
        "moving": 0, "done": 6, "failed": 2, "filtered": 0, "fanned_out": 0}
    assert {
        name: (r.total_blocks, r.completed_blocks, r.failed_blocks) for name, r in runs(pipeline).items()
    } == {"segment": (3, 3, 0), "summarise": (5, 4, 1), "extract": (2, 2, 0)}
    paths = {
        row["uid"]: (row["parent_uid"], [(p["step"], p["status"]) for p in row["path"]])
        for row in item_paths(pipeline)
    }
    assert paths["a"] == (None, [("segment", "succeeded"), ("extract", "succeeded")])
    assert paths["a#2"] == ("a", [("summarise", "failed")])
    assert paths["b#1"] == ("b", [("summarise", "succeeded")])
    assert paths["c"] == (None, [("segment", "succeeded")])


def test_the_last_two_children_settling_in_one_write_gather_their_parent_once(pipeline):
    write(
        runs(pipeline)["segment"],
        {"a": {"segments": ["x", "y"]}, "b": {"segments": ["z"]}, "c": {"segments": ["w"]}},
    )
    write(runs(pipeline)["summarise"], {"a#0": "sx", "a#1": "sy", "b#0": "sz", "c#0": "sw"})
    extract = runs(pipeline)["extract"]
    assert sorted(extract.blocks.values_list("uid", flat=True)) == ["a", "b", "c"]
    assert extract.total_blocks == 3


def test_an_answer_with_more_children_than_allowed_stops_its_item(pipeline, settings):
    settings.CONVEYOR = {**settings.CONVEYOR, "PIPELINE_MAX_CHILDREN": 2}
    write(
        runs(pipeline)["segment"],
        {"a": {"segments": ["1", "2", "3"]}, "b": {"segments": ["1"]}, "c": {"segments": ["1", "2"]}},
    )
    assert items(pipeline)["a"][:2] == ("failed", 1)
    assert (
        "more than 2 (PIPELINE_MAX_CHILDREN)"
        in PipelineItem.objects.get(pipeline=pipeline, uid="a").stop_reason
    )
    assert runs(pipeline)["summarise"].total_blocks == 3


def body(key, steps, items=None):
    return {"key": key.pk, "steps": steps, "items": items or [{"uid": "a", "input": "call a"}]}


def spec(**changes):
    steps = [
        {"name": "segment", "model": MODEL, "output_schema": SEGMENTS, "fan_out": "segments"},
        {"name": "summarise", "model": MODEL},
        {"name": "extract", "model": MODEL, "gather": True},
    ]
    for index, change in changes.items():
        steps[int(index[1:])].update(change)
    return steps


@pytest.mark.parametrize(
    ("steps", "field", "words"),
    [
        (spec(s0={"fan_out": "title"}), "steps.0.fan_out", "does not have"),
        (
            spec(s0={"output_schema": {**SEGMENTS, "properties": {"segments": {"type": "string"}}}}),
            "steps.0.fan_out",
            "not an array",
        ),
        (
            spec(
                s0={
                    "output_schema": {
                        **SEGMENTS,
                        "properties": {
                            "segments": {"type": "array", "maxItems": 500, "items": {"type": "string"}}
                        },
                    }
                }
            ),
            "steps.0.fan_out",
            "PIPELINE_MAX_CHILDREN",
        ),
        (spec(s0={"fan_out": ""}), "steps.2.gather", "fan_out before it"),
        (spec(s2={"gather": False, "input": "{children}"}), "steps.2.input", "only a gather step"),
        (
            [*spec(), {"name": "after", "model": MODEL, "input": "{steps.summarise.output}"}],
            "steps.3.input",
            "child items of step 'segment'",
        ),
        (spec(s1={"gather": True}), "steps.1.gather", "gather in a later step"),
    ],
)
def test_a_bad_fan_out_or_gather_is_a_400_naming_the_step_and_field(client, offline_key, steps, field, words):
    response = client.post("/api/v1/pipelines/", body(offline_key, steps), format="json")
    assert response.status_code == 400, response.data
    fields = response.data["error"]["fields"]
    assert field in fields, fields
    assert words in str(fields[field])
    assert not PipelineItem.objects.exists() and not Run.objects.exists()


def test_an_item_uid_with_a_hash_is_refused_when_the_pipeline_fans_out(client, offline_key):
    response = client.post(
        "/api/v1/pipelines/", body(offline_key, spec(), [{"uid": "a#1", "input": "x"}]), format="json"
    )
    assert response.status_code == 400
    assert "items.0.uid" in response.data["error"]["fields"]
