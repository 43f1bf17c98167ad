"""samples/essay-pipeline.json over samples/essays.jsonl, as the README runs it, against the mock."""

import json
from pathlib import Path

import pytest

from apps.pipelines.selectors import item_paths
from apps.pipelines.serializers import PipelineStepInputSerializer
from apps.pipelines.services.creation import pipeline_create
from apps.runs.services import parse_jsonl
from tests.pipelines.helpers import serve_pipeline

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_the_sample_pipeline_gives_feedback_to_exactly_the_essays_graded_under_60(owner, mock_key):
    spec = json.loads((SAMPLES / "essay-pipeline.json").read_text())
    steps = PipelineStepInputSerializer(data=spec["steps"], many=True)
    steps.is_valid(raise_exception=True)
    with (SAMPLES / "essays.jsonl").open("rb") as lines:
        pipeline = pipeline_create(owner=owner, key=mock_key, name=spec["name"], steps=steps.validated_data,
                                   items=parse_jsonl(lines))
    pipeline = serve_pipeline(pipeline)

    assert pipeline.status == "complete"
    grade = pipeline.steps.get(name="grade").run
    scores = dict(grade.blocks.values_list("uid", "output_json__score"))
    expected = {uid: ["succeeded", "succeeded" if score < 60 else "filtered"]
                for uid, score in scores.items()}
    paths = {row["uid"]: [p["status"] for p in row["path"]] for row in item_paths(pipeline)}
    assert len(paths) == 60 and paths == expected
    assert {path[1] for path in paths.values()} == {"succeeded", "filtered"}
