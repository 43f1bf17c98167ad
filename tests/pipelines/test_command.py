"""`manage.py pipeline submit`: a pipeline from a JSON spec and a JSONL file of items."""

import json

import pytest
from django.core.management import CommandError, call_command

from apps.pipelines.models import Pipeline
from tests.factories import MODEL

pytestmark = pytest.mark.django_db

SPEC = {"name": "two steps", "steps": [
    {"name": "draft", "model": MODEL},
    {"name": "polish", "model": MODEL, "input": "Polish: {steps.draft.output}"},
]}


def files(tmp_path, spec, lines):
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(tmp_path / "spec.json"), str(tmp_path / "items.jsonl")


def test_it_submits_a_pipeline_from_a_spec_and_items(tmp_path, owner, offline_key, capsys):
    spec, items = files(tmp_path, SPEC, [{"uid": "a", "input": "one"}, {"input": "two"}])
    call_command("pipeline", "submit", spec, items, "--user", "owner", "--key", str(offline_key.pk))
    pipeline = Pipeline.objects.get()
    assert (pipeline.name, pipeline.total_items, pipeline.steps.count()) == ("two steps", 2, 2)
    assert f"pipeline {pipeline.pk}: 2 item(s) in 2 step(s)" in capsys.readouterr().out


def test_a_step_naming_a_later_step_is_refused_and_nothing_is_created(tmp_path, owner, offline_key):
    bad = {"steps": [{"name": "draft", "model": MODEL, "input": "x"}, {"name": "polish", "model": MODEL}]}
    spec, items = files(tmp_path, bad, [{"input": "one"}])
    with pytest.raises(CommandError, match=r"steps\.0\.input: step draft: the first step's input"):
        call_command("pipeline", "submit", spec, items, "--user", "owner", "--key", str(offline_key.pk))
    assert not Pipeline.objects.exists()


def test_a_missing_file_is_named(tmp_path, owner, offline_key):
    with pytest.raises(CommandError, match="no such file"):
        call_command("pipeline", "submit", str(tmp_path / "nope.json"), str(tmp_path / "nope.jsonl"),
                     "--user", "owner", "--key", str(offline_key.pk))
