"""POST /api/v1/runs/ with an output schema and block metadata: checked against what the provider
supports (a 400 naming the keyword and its JSON path), bounded, returned everywhere; nothing created on
any error."""

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.providers.prompts import BlockInput, build_params
from apps.runs.models import Block, Run
from tests.api.helpers import error_of
from tests.factories import MODEL

URL = "/api/v1/runs/"
SCHEMA = {"type": "object",
          "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
          "required": ["title", "year"], "additionalProperties": False}


def payload(key, /, **overrides: Any) -> dict[str, Any]:
    body = {"key": key.pk, "model": MODEL, "output_schema": SCHEMA,
            "blocks": [{"uid": "a", "input": "hello", "metadata": {"record": 7}}, {"input": "world"}]}
    body.update(overrides)
    return body


def upload(client, key, lines: list[dict[str, Any]], /, **fields: Any):
    content = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    form = {"key": key.pk, "model": MODEL, **fields,
            "file": SimpleUploadedFile("blocks.jsonl", content, content_type="application/x-ndjson")}
    return client.post(URL, form, format="multipart")


def test_a_run_is_created_with_its_schema_and_each_blocks_metadata(owner, offline_key, api):
    response = api(owner).post(URL, payload(offline_key), format="json")
    assert response.status_code == 201
    assert response.json()["output_schema"] == SCHEMA
    run = Run.objects.get()
    assert run.output_schema == SCHEMA
    assert dict(run.blocks.values_list("uid", "metadata")) == {"a": {"record": 7}, "line-2": None}


def test_the_schema_keeps_the_order_of_its_properties(owner, offline_key, api):
    schema = {"type": "object", "additionalProperties": False, "required": ["zeta", "alpha"],
              "properties": {"zeta": {"type": "string"}, "alpha": {"type": "string"}}}
    body = api(owner).post(URL, payload(offline_key, output_schema=schema), format="json").json()
    assert list(body["output_schema"]["properties"]) == ["zeta", "alpha"]
    sent = build_params(Run.objects.get().call_spec, [BlockInput(1, "a", "text")])
    assert list(sent["output_config"]["format"]["schema"]["properties"]) == ["zeta", "alpha"]


def test_metadata_is_returned_with_the_blocks(owner, offline_key, api):
    api(owner).post(URL, payload(offline_key), format="json")
    run = Run.objects.get()
    blocks = api(owner).get(f"/api/v1/runs/{run.pk}/blocks/").json()["results"]
    assert [b["metadata"] for b in blocks] == [{"record": 7}, None]
    detail = api(owner).get(f"/api/v1/runs/{run.pk}/blocks/a/").json()
    assert (detail["metadata"], detail["output_json"]) == ({"record": 7}, None)


@pytest.mark.parametrize(("schema", "keyword", "path"), [
    ({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}},
      "additionalProperties": False}, "minimum", "$.properties.age"),
    ({"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}},
      "additionalProperties": False}, "maxLength", "$.properties.name"),
    ({"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"},
                                                "minItems": 3}},
      "additionalProperties": False}, "minItems", "$.properties.tags"),
    ({"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
      "additionalProperties": False}, "oneOf", "$.properties.a"),
    ({"type": "object", "properties": {"when": {"type": "string", "format": "color"}},
      "additionalProperties": False}, "format", "$.properties.when"),
], ids=["numeric-bound", "length-bound", "min-items", "one-of", "format"])
def test_a_keyword_the_provider_does_not_support_is_refused_naming_it_and_its_path(
        owner, offline_key, api, schema, keyword, path):
    response = api(owner).post(URL, payload(offline_key, output_schema=schema), format="json")
    assert response.status_code == 400
    message = error_of(response)["fields"]["output_schema"][0]
    assert f"`{keyword}`" in message and path in message
    assert not Run.objects.exists()


def test_an_object_without_additional_properties_false_is_refused_naming_its_path(owner, offline_key, api):
    schema = {"type": "object", "additionalProperties": False,
              "properties": {"author": {"type": "object", "properties": {"name": {"type": "string"}}}}}
    message = error_of(api(owner).post(URL, payload(offline_key, output_schema=schema), format="json"))[
        "fields"]["output_schema"][0]
    assert "additionalProperties: false" in message and "$.properties.author" in message


def test_a_schema_that_is_not_json_schema_is_refused_naming_the_path(owner, offline_key, api):
    schema = {"type": "object", "properties": {"a": {"type": "strng"}}, "additionalProperties": False}
    message = error_of(api(owner).post(URL, payload(offline_key, output_schema=schema), format="json"))[
        "fields"]["output_schema"][0]
    assert "not a valid JSON Schema" in message and "$.properties.a.type" in message


def test_a_recursive_schema_is_refused(owner, offline_key, api):
    children = {"type": "array", "items": {"$ref": "#/$defs/node"}}
    node = {"type": "object", "properties": {"children": children}, "additionalProperties": False}
    schema = {**node, "$defs": {"node": node}}
    message = error_of(api(owner).post(URL, payload(offline_key, output_schema=schema), format="json"))[
        "fields"]["output_schema"][0]
    assert "recursive" in message


def test_a_schema_over_64_kb_is_refused(owner, offline_key, api):
    schema = {**SCHEMA, "description": "x" * 70_000}
    message = error_of(api(owner).post(URL, payload(offline_key, output_schema=schema), format="json"))[
        "fields"]["output_schema"][0]
    assert "65,536" in message
    assert not Run.objects.exists()


def test_a_schema_that_is_not_an_object_is_refused(owner, offline_key, api):
    response = api(owner).post(URL, payload(offline_key, output_schema=["type", "object"]), format="json")
    assert error_of(response)["fields"]["output_schema"] == ["Must be a JSON object."]


def test_metadata_that_is_not_an_object_is_refused_naming_the_block(owner, offline_key, api):
    blocks = [{"input": "one"}, {"input": "two", "metadata": ["a", "b"]}]
    response = api(owner).post(URL, payload(offline_key, blocks=blocks), format="json")
    assert error_of(response)["fields"] == {"blocks.1.metadata": ["Must be a JSON object."]}
    assert not Run.objects.exists()


def test_metadata_over_8_kb_is_refused_naming_the_block(owner, offline_key, api):
    blocks = [{"input": "one"}, {"input": "two", "metadata": {"notes": "x" * 9000}}]
    response = api(owner).post(URL, payload(offline_key, blocks=blocks), format="json")
    message = error_of(response)["fields"]["blocks.1.metadata"][0]
    assert "at most 8,192" in message
    assert not Block.objects.exists()


def test_in_an_upload_bad_metadata_is_refused_naming_its_line(owner, offline_key, api):
    lines = [{"input": "one", "metadata": {"ok": True}}, {"input": "two", "metadata": {"big": "y" * 9000}}]
    response = upload(api(owner), offline_key, lines)
    error = error_of(response)
    assert error["line"] == 2
    assert error["fields"]["file"][0].startswith("line 2: `metadata` is")
    assert not Run.objects.exists()


def test_an_upload_takes_its_schema_as_a_json_form_field(owner, offline_key, api):
    response = upload(api(owner), offline_key, [{"input": "one", "metadata": {"id": 1}}],
                      output_schema=json.dumps(SCHEMA))
    assert response.status_code == 201
    run = Run.objects.get()
    assert (run.output_schema, run.blocks.get().metadata) == (SCHEMA, {"id": 1})


def test_a_template_naming_a_field_a_block_lacks_is_refused_naming_the_block(owner, offline_key, api):
    blocks = [{"input": "one", "metadata": {"title": "A"}}, {"input": "two", "metadata": {"other": 1}}]
    response = api(owner).post(URL, payload(offline_key, blocks=blocks,
                                            prompt_template="{metadata.title}: {input}"), format="json")
    assert "has no field 'title'" in error_of(response)["fields"]["blocks.1.metadata"][0]
    assert not Run.objects.exists()


def test_the_schema_is_counted_in_the_estimate(owner, offline_key, api):
    plain = api(owner).post("/api/v1/runs/estimate/", payload(offline_key, output_schema=None),
                            format="json").json()
    structured = api(owner).post("/api/v1/runs/estimate/", payload(offline_key), format="json").json()
    assert structured["input_tokens"]["high"] > plain["input_tokens"]["high"]
    assert float(structured["cost_usd"]["high"]) > float(plain["cost_usd"]["high"])


def test_the_same_request_with_another_schema_is_another_request(owner, offline_key, api):
    client = api(owner)
    first = client.post(URL, payload(offline_key), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    other = {**SCHEMA, "required": ["title"]}
    second = client.post(URL, payload(offline_key, output_schema=other), format="json",
                         HTTP_IDEMPOTENCY_KEY="k1")
    assert (first.status_code, second.status_code) == (201, 422)
