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


def test_show_says_where_the_items_are_and_each_steps_run(tmp_path, owner, offline_key, capsys):
    spec, items = files(tmp_path, SPEC, [{"uid": "a", "input": "one"}])
    call_command("pipeline", "submit", spec, items, "--user", "owner", "--key", str(offline_key.pk))
    pipeline = Pipeline.objects.get()
    capsys.readouterr()
    call_command("pipeline", "show", str(pipeline.pk))
    out = capsys.readouterr().out
    assert out.startswith("running: items 1 moving, 0 done, 0 failed, 0 filtered; $0.0000")
    assert "1. draft" in out and "2. polish" in out and "0 ok, 0 failed of 1" in out
