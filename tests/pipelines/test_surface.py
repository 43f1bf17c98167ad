"""The pipeline's surface: results joined (one row per item, a column per step's output field; JSON,
JSONL, CSV), create from a YAML spec and a JSONL upload (API and CLI), and the admin page."""

import csv
import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client

from apps.pipelines.models import Pipeline
from apps.runs.models import Run
from apps.runs.services import Outcome, blocks_claim, outcomes_record
from tests.api.conftest import api, fresh_throttles  # noqa: F401 (the API tests' fixtures)
from tests.factories import MODEL
from tests.pipelines.helpers import make_pipeline, step

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
GRADE = {
    "type": "object",
    "properties": {"score": {"type": "integer"}, "reason": {"type": "string"}},
    "required": ["score", "reason"],
    "additionalProperties": False,
}
STEPS = [
    step("grade", output_schema=GRADE),
    step("feedback", input="{steps.grade.output.score}: {input}", filter="steps.grade.output.score < 60"),
]
YAML_SPEC = f"""
name: from yaml
steps:
  - name: grade
    model: {MODEL}
    output_schema: {json.dumps(GRADE)}
  - name: feedback
    model: {MODEL}
    input: "Score {{steps.grade.output.score}}: {{input}}"
"""


@pytest.fixture
def client(api, owner):  # noqa: F811
    return api(owner)


def write(run: Run, results: dict[str, object]) -> None:
    claim = blocks_claim(run_id=run.pk, limit=100, worker="w1")
    outcomes_record(
        run_id=run.pk,
        outcomes=[
            Outcome(
                block_id=b.id,
                lease_token=claim.lease_token,
                attempt=b.attempt,
                output=json.dumps(results[b.uid])
                if isinstance(results[b.uid], dict)
                else str(results[b.uid]),
                output_json=results[b.uid] if isinstance(results[b.uid], dict) else None,
            )
            for b in claim.blocks
        ],
    )


@pytest.fixture
def finished(owner, offline_key):
    pipeline = make_pipeline(owner, offline_key, STEPS, {"a": "essay a", "b": "essay b"})
    runs = {s.name: s.run for s in pipeline.steps.select_related("run")}
    write(runs["grade"], {"a": {"score": 40, "reason": "thin"}, "b": {"score": 90, "reason": "fine"}})
    write(runs["feedback"], {"a": "more detail, please"})
    pipeline.refresh_from_db()
    assert pipeline.status == "complete"
    return pipeline


def test_the_results_are_joined_one_row_per_item_with_a_column_per_steps_output_field(client, finished):
    response = client.get(f"/api/v1/pipelines/{finished.pk}/results/")
    assert response.status_code == 200
    rows = json.loads(b"".join(response.streaming_content))
    assert rows == [
        {
            "uid": "a",
            "parent_uid": None,
            "status": "done",
            "step": "feedback",
            "grade.score": 40,
            "grade.reason": "thin",
            "grade.stale": False,
            "feedback.output": "more detail, please",
            "feedback.stale": False,
        },
        {
            "uid": "b",
            "parent_uid": None,
            "status": "filtered",
            "step": "feedback",
            "grade.score": 90,
            "grade.reason": "fine",
            "grade.stale": False,
            "feedback.output": None,
            "feedback.stale": False,
        },
    ]


def test_the_joined_results_come_as_csv_with_a_header(client, finished):
    response = client.get(f"/api/v1/pipelines/{finished.pk}/results/?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert table[0] == [
        "uid",
        "parent_uid",
        "status",
        "step",
        "grade.score",
        "grade.reason",
        "grade.stale",
        "feedback.output",
        "feedback.stale",
    ]
    assert table[1:] == [
        ["a", "", "done", "feedback", "40", "thin", "False", "more detail, please", "False"],
        ["b", "", "filtered", "feedback", "90", "fine", "False", "", "False"],
    ]


def test_a_pipeline_is_created_from_a_yaml_spec_and_a_jsonl_upload(client, offline_key):
    items = b'{"uid": "a", "input": "essay a"}\n{"input": "essay b"}\n'
    response = client.post(
        "/api/v1/pipelines/",
        {
            "spec": SimpleUploadedFile("spec.yaml", YAML_SPEC.encode()),
            "items": SimpleUploadedFile("items.jsonl", items),
            "key": offline_key.pk,
        },
        format="multipart",
    )
    assert response.status_code == 201, response.data
    assert (response.data["name"], response.data["total_items"]) == ("from yaml", 2)
    assert [s["name"] for s in response.data["steps"]] == ["grade", "feedback"]


@pytest.mark.parametrize(
    ("spec", "items", "field"),
    [
        (b"steps: [oops", b'{"input": "x"}\n', "spec"),
        (
            YAML_SPEC.replace("{steps.grade.output.score}", "{steps.grade.output.mark}").encode(),
            b'{"input": "x"}\n',
            "steps.1.input",
        ),
        (YAML_SPEC.encode(), b'{"input": "x"}\n{"uid": 3.5, "input": "y"}\n', "items.1.uid"),
    ],
)
def test_a_bad_upload_is_a_400_naming_where_and_nothing_is_created(client, offline_key, spec, items, field):
    response = client.post(
        "/api/v1/pipelines/",
        {
            "spec": SimpleUploadedFile("spec.yaml", spec),
            "items": SimpleUploadedFile("items.jsonl", items),
            "key": offline_key.pk,
        },
        format="multipart",
    )
    assert response.status_code == 400, response.data
    assert field in response.data["error"]["fields"], response.data
    assert not Pipeline.objects.exists() and not Run.objects.exists()


def test_the_cli_submits_the_yaml_sample(owner, offline_key, capsys):
    call_command(
        "pipeline",
        "submit",
        str(SAMPLES / "essay-pipeline.yaml"),
        str(SAMPLES / "essays.jsonl"),
        "--user",
        "owner",
        "--key",
        str(offline_key.pk),
    )
    pipeline = Pipeline.objects.get()
    assert pipeline.name == "essay feedback"
    assert list(pipeline.steps.values_list("name", "filter")) == [
        ("grade", ""),
        ("feedback", "steps.grade.output.score < 60"),
    ]


def test_the_admin_shows_a_pipeline_as_its_steps_with_their_counts(staff, finished):
    browser = Client()
    browser.force_login(staff)
    page = browser.get(f"/admin/pipelines/pipeline/{finished.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<strong>grade</strong>" in html and "<strong>feedback</strong>" in html
    assert "steps.grade.output.score &lt; 60" in html
    assert "1 done" in html and "1 filtered" in html
    assert 'http-equiv="refresh"' not in html  # complete: nothing moves any more
    assert browser.get("/admin/pipelines/pipeline/").status_code == 200
