"""Structured outputs in the provider layer: what a schema may use, the request a structured call sends,
the pack reply schema, and every answer read and validated (apps/providers/structured.py, prompts.py)."""

import json

import jsonschema
import pytest

from apps.providers.errors import FailureKind, ProviderFailure
from apps.providers.prompts import BlockInput, CallSpec, build_params, read_reply
from apps.providers.structured import (
    SchemaProblem,
    check_output_schema,
    pack_reply_schema,
    schema_json,
    without_document,
)

PERSON = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
          "additionalProperties": False}
SCHEMA = {
    "$defs": {"person": PERSON},
    "type": "object",
    "properties": {
        "title": {"type": "string", "description": "as printed"},
        "author": {"$ref": "#/$defs/person"},
        "year": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1},
        "isbn": {"type": "string", "pattern": "^[0-9-]+$"},
        "published": {"type": "string", "format": "date"},
    },
    "required": ["title", "author", "year", "tags", "isbn", "published"],
    "additionalProperties": False,
}
TEXT = schema_json(SCHEMA)
GOOD = {"title": "Dune", "author": {"name": "Herbert"}, "year": 1965, "tags": ["a"], "isbn": "0-441",
        "published": "1965-08-01"}


def problem(schema) -> SchemaProblem:
    with pytest.raises(SchemaProblem) as caught:
        check_output_schema(schema)
    return caught.value


def test_the_providers_subset_is_accepted():
    check_output_schema(SCHEMA)


@pytest.mark.parametrize("keyword", ["minimum", "maximum", "exclusiveMinimum", "multipleOf"])
def test_numeric_bounds_are_refused_with_the_keyword_and_path(keyword):
    schema = {"type": "object", "additionalProperties": False,
              "properties": {"n": {"type": "number", keyword: 1}}}
    refused = problem(schema)
    assert (refused.keyword, refused.path) == (keyword, "$.properties.n")
    assert "numeric bounds" in refused.message


def test_a_nested_object_without_additional_properties_false_is_refused():
    schema = {"type": "object", "additionalProperties": False,
              "properties": {"list": {"type": "array", "items": {"type": "object", "properties": {}}}}}
    refused = problem(schema)
    assert (refused.keyword, refused.path) == ("additionalProperties", "$.properties.list.items")


def test_additional_properties_as_a_schema_is_refused():
    refused = problem({"type": "object", "properties": {}, "additionalProperties": {"type": "string"}})
    assert refused.keyword == "additionalProperties"


def test_a_keyword_of_another_type_is_refused_as_such():
    refused = problem({"type": "object", "additionalProperties": False,
                       "properties": {"n": {"type": "integer", "format": "date"}}})
    assert refused.keyword == "format" and "string schemas only" in refused.message


def test_a_pattern_with_lookaround_is_refused():
    refused = problem({"type": "object", "additionalProperties": False,
                       "properties": {"s": {"type": "string", "pattern": "^(?!x).*$"}}})
    assert refused.keyword == "pattern"


def test_an_enum_of_objects_is_refused():
    refused = problem({"type": "object", "additionalProperties": False,
                       "properties": {"e": {"enum": [{"a": 1}]}}})
    assert refused.keyword == "enum"


def test_an_external_ref_is_refused():
    refused = problem({"type": "object", "additionalProperties": False,
                       "properties": {"e": {"$ref": "https://example.com/s.json"}}})
    assert refused.keyword == "$ref" and "local" in refused.message


def test_a_ref_to_nothing_is_refused():
    assert "points at nothing" in problem({"type": "object", "additionalProperties": False,
                                          "properties": {"e": {"$ref": "#/$defs/gone"}}}).message


def test_a_recursion_through_definitions_is_refused():
    schema = {"type": "object", "additionalProperties": False, "properties": {"a": {"$ref": "#/$defs/a"}},
              "$defs": {"a": {"type": "object", "additionalProperties": False,
                              "properties": {"b": {"$ref": "#/$defs/b"}}},
                        "b": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/a"}]}}}
    assert "recursive" in problem(schema).message


def test_a_root_that_is_not_an_object_is_refused():
    assert problem({"type": "array", "items": {"type": "string"}}).keyword == "type"


def test_too_many_optional_properties_are_refused():
    properties = {f"p{i}": {"type": "string"} for i in range(25)}
    refused = problem({"type": "object", "properties": properties, "additionalProperties": False})
    assert "25 optional properties" in refused.message


def test_a_structured_call_sends_the_schema_as_output_config():
    spec = CallSpec(model="m", system_prompt="", prompt_template="{input}", max_tokens=10, output_schema=TEXT)
    params = build_params(spec, [BlockInput(1, "a", "text")])
    assert params["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}


def test_a_packed_call_asks_for_the_pack_reply_schema():
    spec = CallSpec(model="m", system_prompt="", prompt_template="{input}", max_tokens=10, output_schema=TEXT)
    params = build_params(spec, [BlockInput(1, "a", "one"), BlockInput(2, "b", "two")])
    assert params["output_config"]["format"]["schema"] == pack_reply_schema(SCHEMA)
    assert '"items"' in params["messages"][0]["content"][0]["text"]


def test_the_pack_reply_schema_holds_documents_of_the_runs_schema_and_its_refs_still_resolve():
    pack = pack_reply_schema(SCHEMA)
    check_output_schema(pack)
    jsonschema.validate({"items": [{"uid": "a", "output": GOOD}]}, pack)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"items": [{"uid": "a", "output": {**GOOD, "author": {"age": 3}}}]}, pack)


def test_a_valid_answer_is_read_as_its_document():
    spec = CallSpec(model="m", system_prompt="", prompt_template="{input}", max_tokens=10, output_schema=TEXT)
    answer = read_reply(spec, ["a"], json.dumps(GOOD))["a"]
    assert (answer.document, answer.failure) == (GOOD, None)


@pytest.mark.parametrize(("text", "words"), [
    ('{"title": "Dune"', "not JSON"),
    (json.dumps({**GOOD, "year": "1965"}), "(at $.year)"),
    (json.dumps({**GOOD, "extra": 1}), "Additional properties"),
    (json.dumps({**GOOD, "published": "yesterday"}), "is not a 'date'"),
])
def test_an_answer_that_is_no_document_of_the_schema_is_output_invalid_with_its_text(text, words):
    spec = CallSpec(model="m", system_prompt="", prompt_template="{input}", max_tokens=10, output_schema=TEXT)
    failure = read_reply(spec, ["a"], text)["a"].failure
    assert (failure.kind, failure.code) == (FailureKind.OUTPUT_INVALID, "output_invalid")
    assert words in failure.message
    assert failure.partial_text == text


def test_a_packed_reply_maps_each_uid_to_its_document():
    spec = CallSpec(model="m", system_prompt="", prompt_template="{input}", max_tokens=10, output_schema=TEXT)
    items = [{"uid": "b", "output": GOOD}, {"uid": "a", "output": {**GOOD, "year": None}}]
    reply = json.dumps({"items": items})
    answers = read_reply(spec, ["a", "b"], reply)
    assert answers["a"].document["year"] is None and answers["b"].document == GOOD


def test_one_invalid_item_of_a_pack_fails_only_its_block():
    spec = CallSpec(model="m", system_prompt="", prompt_template="{input}", max_tokens=10, output_schema=TEXT)
    reply = json.dumps({"items": [{"uid": "a", "output": GOOD}, {"uid": "b", "output": {"title": 1}}]})
    answers = read_reply(spec, ["a", "b"], reply)
    assert answers["a"].failure is None
    assert answers["b"].failure.code == "output_invalid"


@pytest.mark.parametrize("reply", [
    {"items": [{"uid": "a", "output": GOOD}]},
    {"items": [{"uid": "a", "output": GOOD}, {"uid": "a", "output": GOOD}]},
    {"items": [{"uid": "a", "output": GOOD}, {"uid": "c", "output": GOOD}]},
    {"a": GOOD, "b": GOOD},
], ids=["missing", "repeated", "unexpected", "not-items"])
def test_a_packed_reply_that_does_not_map_back_splits_the_pack(reply):
    spec = CallSpec(model="m", system_prompt="", prompt_template="{input}", max_tokens=10, output_schema=TEXT)
    with pytest.raises(ProviderFailure) as caught:
        read_reply(spec, ["a", "b"], json.dumps(reply))
    assert caught.value.kind == FailureKind.OUTPUT_PROBLEM


@pytest.mark.parametrize("code", ["max_tokens", "refusal"])
def test_an_answer_that_stopped_without_a_document_is_output_invalid_alone_and_a_split_in_a_pack(code):
    failure = ProviderFailure(FailureKind.BLOCK_FATAL, code, "stopped", http_status=200, partial_text='{"ti')
    alone = without_document(failure, packed=False)
    assert (alone.kind, alone.code) == (FailureKind.OUTPUT_INVALID, "output_invalid")
    assert alone.partial_text == '{"ti'
    assert without_document(failure, packed=True).kind == FailureKind.OUTPUT_PROBLEM


def test_metadata_reaches_the_prompt_only_where_the_template_names_it():
    spec = CallSpec(model="m", system_prompt="", prompt_template="Title: {metadata.book.title}\n{input}",
                    max_tokens=10, cache=True)
    block = BlockInput(1, "a", "chapter", metadata={"book": {"title": "Dune"}, "internal_id": "X-42"})
    params = build_params(spec, [block])
    stable, variable = params["messages"][0]["content"]
    assert stable == {"type": "text", "text": "Title: ", "cache_control": {"type": "ephemeral", "ttl": "5m"}}
    assert variable == {"type": "text", "text": "Dune\nchapter"}
    assert "X-42" not in json.dumps(params)


def test_in_a_pack_each_block_holds_its_own_rendered_metadata():
    spec = CallSpec(model="m", system_prompt="", prompt_template="Grade {metadata.name}: {input}",
                    max_tokens=10)
    params = build_params(spec, [BlockInput(1, "a", "one", {"name": "Ann"}),
                                 BlockInput(2, "b", "two", {"name": 7})])
    text = params["messages"][0]["content"][-1]["text"]
    assert '<block uid="a">\n{metadata.name}: one' not in text
    assert '<block uid="a">\nAnn: one\n</block>' in text and '<block uid="b">\n7: two\n</block>' in text
