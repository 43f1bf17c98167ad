"""Exports for analysis: a run's results and failures as JSONL, CSV and Parquet, from the API and the
command line, with a structured run's fields and every block's metadata as columns."""

import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from apps.runs.models import Block
from apps.runs.reporting.exports import metadata_kinds, result_columns, schema_columns
from apps.runs.services import BlockSpec, run_create
from tests.factories import MODEL
from tests.runs.helpers import serve_until_settled

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"enum": ["spam", "ham"], "description": "the verdict"},
        "score": {"type": "number"},
        "flagged": {"type": "boolean"},
        "sender": {"type": "object", "properties": {"name": {"type": "string"}, "rank": {"type": "integer"}},
                   "required": ["name", "rank"], "additionalProperties": False},
        "reasons": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["label", "score", "flagged", "sender", "reasons"],
    "additionalProperties": False,
}
METADATA = [
    {"record_id": 101, "source": "inbox", "tags": ["a"], "weight": 0.5},
    {"record_id": 102, "source": "spam folder", "weight": 2},
    {"record_id": 103, "source": "inbox, \"quoted\"", "tags": [], "weight": 1.25},
]


def structured_run(owner, key, *, inputs=None, metadata=METADATA):
    inputs = inputs or [f"message number {i} from a sender" for i in range(len(metadata))]
    blocks = [BlockSpec(uid=f"m{i}", input=text, metadata=meta)
              for i, (text, meta) in enumerate(zip(inputs, metadata, strict=True))]
    return run_create(owner=owner, key=key, blocks=blocks, model=MODEL, output_schema=SCHEMA)


def client(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def test_a_structured_runs_schema_is_flattened_into_typed_columns():
    columns = {c.name: c.kind for c in schema_columns(SCHEMA)}
    assert columns == {"output.label": "string", "output.score": "number", "output.flagged": "boolean",
                       "output.sender.name": "string", "output.sender.rank": "integer",
                       "output.reasons": "json"}


def test_a_column_from_a_ref_is_flattened_through_it():
    schema = {"type": "object", "properties": {"who": {"$ref": "#/$defs/person"}},
              "additionalProperties": False,
              "$defs": {"person": {"type": "object", "properties": {"age": {"type": ["integer", "null"]}},
                                   "additionalProperties": False}}}
    assert [(c.name, c.kind) for c in schema_columns(schema)] == [("output.who.age", "integer")]


def test_metadata_keys_get_one_column_each_typed_by_their_values(owner, offline_key):
    run = structured_run(owner, offline_key)
    assert metadata_kinds(run.pk) == {"record_id": "integer", "source": "string", "tags": "json",
                                      "weight": "number"}


def test_the_csv_export_has_a_header_row_and_round_trips_metadata(owner, mock_key):
    run = serve_until_settled(structured_run(owner, mock_key))
    rows = csv_rows(body(client(owner).get(f"/api/v1/runs/{run.pk}/results/?format=csv")))
    header = list(rows[0])
    assert header[:9] == ["uid", "block_index", "status", "output.label", "output.score", "output.flagged",
                          "output.sender.name", "output.sender.rank", "output.reasons"]  # the schema's order
    assert "metadata.record_id" in header and "output" not in header
    assert [r["metadata.record_id"] for r in rows] == ["101", "102", "103"]
    assert [r["metadata.source"] for r in rows] == ["inbox", "spam folder", 'inbox, "quoted"']
    assert [r["metadata.tags"] for r in rows] == ['["a"]', "", "[]"]
    block = run.blocks.get(uid="m0")
    assert rows[0]["output.label"] == block.output_json["label"]
    assert rows[0]["output.sender.rank"] == str(block.output_json["sender"]["rank"])
    assert json.loads(rows[0]["output.reasons"]) == block.output_json["reasons"]


def test_the_parquet_export_is_typed_and_round_trips_metadata(owner, mock_key):
    run = serve_until_settled(structured_run(owner, mock_key))
    response = client(owner).get(f"/api/v1/runs/{run.pk}/results/?format=parquet")
    assert response["Content-Type"] == "application/vnd.apache.parquet"
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.pk}.parquet"'
    table = pq.read_table(io.BytesIO(body(response)))
    assert table.schema.field("metadata.record_id").type == pa.int64()
    assert table.schema.field("metadata.weight").type == pa.float64()
    assert table.schema.field("output.flagged").type == pa.bool_()
    assert table.schema.field("cost_usd").type == pa.decimal128(16, 8)
    assert table.schema.field("output.label").metadata[b"description"] == b"the verdict"
    assert json.loads(table.schema.metadata[b"conveyor.output_schema"]) == SCHEMA
    rows = table.to_pylist()
    assert [r["metadata.record_id"] for r in rows] == [101, 102, 103]
    assert [r["metadata.weight"] for r in rows] == [0.5, 2.0, 1.25]
    assert [r["metadata.source"] for r in rows] == ["inbox", "spam folder", 'inbox, "quoted"']
    assert rows[1]["output.sender.name"] == run.blocks.get(uid="m1").output_json["sender"]["name"]


def test_the_jsonl_export_carries_the_document_and_the_metadata(owner, mock_key):
    run = serve_until_settled(structured_run(owner, mock_key))
    lines = [json.loads(line) for line in body(client(owner).get(f"/api/v1/runs/{run.pk}/results/"))
             .decode().splitlines()]
    assert [line["metadata"] for line in lines] == METADATA
    assert lines[0]["output_json"] == json.loads(lines[0]["output"])


def test_a_free_text_run_exports_one_output_column(owner, offline_key):
    blocks = [BlockSpec(uid="a", input="hello", metadata={"k": "v"}), BlockSpec(uid="b", input="world")]
    run = run_create(owner=owner, key=offline_key, blocks=blocks, model=MODEL)
    Block.objects.filter(run=run, uid="a").update(status="succeeded", output="HELLO")
    rows = csv_rows(body(client(owner).get(f"/api/v1/runs/{run.pk}/results/", HTTP_ACCEPT="text/csv")))
    assert [(r["uid"], r["output"], r["metadata.k"]) for r in rows] == [("a", "HELLO", "v"), ("b", "", "")]


def test_the_columns_say_what_they_hold(owner, offline_key):
    run = structured_run(owner, offline_key)
    assert all(column.description for column in result_columns(run))


def test_a_runs_failures_export_the_same_ways_with_the_raw_answer(owner, mock_key):
    inputs = ["fine", "always declines [[mock:refusal]]", "also fine"]
    run = serve_until_settled(structured_run(owner, mock_key, inputs=inputs))
    api = client(owner)
    text = body(api.get(f"/api/v1/runs/{run.pk}/failures/")).decode()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [(line["uid"], line["error_code"], line["metadata"]["record_id"]) for line in lines] == [
        ("m1", "output_invalid", 102)]
    assert lines[0]["raw_output"] == "I can't help with that request."
    rows = csv_rows(body(api.get(f"/api/v1/runs/{run.pk}/failures/?format=csv")))
    assert [(r["uid"], r["metadata.source"], r["state"]) for r in rows] == [("m1", "spam folder", "parked")]
    table = pq.read_table(io.BytesIO(body(api.get(f"/api/v1/runs/{run.pk}/failures/?format=parquet"))))
    assert table.to_pylist()[0]["attempt_count"] == 3


def test_an_export_of_another_users_run_is_a_404_in_any_format(owner, outsider, offline_key):
    run = structured_run(owner, offline_key)
    for fmt in ("jsonl", "csv", "parquet"):
        response = client(outsider).get(f"/api/v1/runs/{run.pk}/results/?format={fmt}")
        assert response.status_code == 404
        assert json.loads(response.content)["error"]["code"] == "not_found"


def test_an_unknown_format_is_a_404(owner, offline_key):
    run = structured_run(owner, offline_key)
    assert client(owner).get(f"/api/v1/runs/{run.pk}/results/?format=xlsx").status_code == 404


def test_the_export_command_writes_csv_to_standard_output(owner, offline_key):
    run = structured_run(owner, offline_key)
    out = io.StringIO()
    call_command("export", str(run.pk), "--format", "csv", stdout=out)
    assert [r["metadata.record_id"] for r in csv_rows(out.getvalue().encode())] == ["101", "102", "103"]


def test_the_export_command_writes_parquet_to_a_file(owner, offline_key, tmp_path):
    run = structured_run(owner, offline_key)
    target = tmp_path / "results.parquet"
    err = io.StringIO()
    call_command("runs", "export", str(run.pk), "--format", "parquet", "--output", str(target), stderr=err)
    assert pq.read_table(target).column("metadata.source").to_pylist() == [m["source"] for m in METADATA]
    assert "written to" in err.getvalue()


def test_parquet_to_a_stream_that_takes_no_bytes_asks_for_a_file(owner, offline_key):
    run = structured_run(owner, offline_key)
    with pytest.raises(CommandError, match="--output FILE"):
        call_command("export", str(run.pk), "--format", "parquet", stdout=io.StringIO())


def test_the_export_command_writes_a_runs_failures(owner, mock_key, tmp_path):
    run = serve_until_settled(structured_run(owner, mock_key, inputs=["a", "b [[mock:refusal]]", "c"]))
    target = tmp_path / "failures.csv"
    call_command("export", str(run.pk), "--failures", "--format", "csv", "--output", str(target),
                 stderr=io.StringIO())
    assert [r["uid"] for r in csv_rows(target.read_bytes())] == ["m1"]
