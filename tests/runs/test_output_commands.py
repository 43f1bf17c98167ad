"""`submit --output-schema` and block metadata from the command line: a schema from a file, checked as
the API checks it; a missing or unreadable file named; nothing created on any error."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from apps.runs.models import Run

pytestmark = pytest.mark.django_db

SCHEMA = {"type": "object", "properties": {"label": {"enum": ["spam", "ham"]}}, "required": ["label"],
          "additionalProperties": False}


@pytest.fixture
def blocks_file(tmp_path):
    path = tmp_path / "blocks.jsonl"
    path.write_text('{"uid": "a", "input": "one", "metadata": {"record": 1}}\n{"input": "two"}\n')
    return path


def submit(blocks_file, *options: str) -> str:
    out = io.StringIO()
    call_command("submit", str(blocks_file), "--user", "owner", "--key", "main", *options, stdout=out)
    return out.getvalue()


def test_submit_takes_the_output_schema_from_a_file(owner, offline_key, blocks_file, tmp_path):
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(SCHEMA))
    submit(blocks_file, "--output-schema", f"@{schema_file}")
    run = Run.objects.get()
    assert run.output_schema == SCHEMA
    assert dict(run.blocks.values_list("uid", "metadata")) == {"a": {"record": 1}, "line-2": None}


def test_submit_takes_the_output_schema_inline(owner, offline_key, blocks_file):
    submit(blocks_file, "--output-schema", json.dumps(SCHEMA))
    assert Run.objects.get().output_schema == SCHEMA


def test_a_missing_schema_file_is_named_and_nothing_is_created(owner, offline_key, blocks_file, tmp_path):
    missing = tmp_path / "nowhere" / "schema.json"
    with pytest.raises(CommandError, match=f"--output-schema: no such file: {missing}"):
        submit(blocks_file, "--output-schema", f"@{missing}")
    assert not Run.objects.exists()


def test_a_schema_file_that_is_not_json_is_named(owner, offline_key, blocks_file, tmp_path):
    schema_file = tmp_path / "schema.json"
    schema_file.write_text("{type: object}")
    with pytest.raises(CommandError, match=f"--output-schema: {schema_file} is not valid JSON"):
        submit(blocks_file, "--output-schema", f"@{schema_file}")


def test_a_schema_the_provider_does_not_support_is_refused_naming_the_keyword(owner, offline_key,
                                                                               blocks_file):
    schema = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 5}},
              "additionalProperties": False}
    with pytest.raises(CommandError, match=r"`maximum` at \$\.properties\.n"):
        submit(blocks_file, "--output-schema", json.dumps(schema))
    assert not Run.objects.exists()


def test_a_schema_that_is_not_an_object_is_refused_naming_the_option(owner, offline_key, blocks_file):
    with pytest.raises(CommandError, match=r"--output-schema \(output_schema\): Must be a JSON object"):
        submit(blocks_file, "--output-schema", "[1, 2]")


def test_metadata_over_the_limit_is_refused_naming_the_line(owner, offline_key, tmp_path):
    path = tmp_path / "blocks.jsonl"
    path.write_text('{"input": "one"}\n' + json.dumps({"input": "two", "metadata": {"x": "y" * 9000}}) + "\n")
    with pytest.raises(CommandError, match="line 2: `metadata` is"):
        submit(path)
    assert not Run.objects.exists()
