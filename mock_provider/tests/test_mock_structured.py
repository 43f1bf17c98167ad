"""Structured outputs: `output_config.format` answered with a conforming document derived from the input,
schemas the API would refuse refused, and the directives for a refusal and a cut document."""

import json

import anthropic
import jsonschema
import pytest

from mock_provider.tests.conftest import MODEL, ask

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "year": {"type": ["integer", "null"]},
        "score": {"type": "number"},
        "ok": {"type": "boolean"},
        "genre": {"enum": ["fiction", "essay"]},
        "isbn": {"type": "string", "pattern": "^97[89]-[0-9]{10}$"},
        "when": {"type": "string", "format": "date-time"},
        "contact": {"type": "string", "format": "email"},
        "author": {"$ref": "#/$defs/person"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "either": {"anyOf": [{"type": "null"}, {"type": "string", "format": "uuid"}]},
    },
    "required": ["title", "year", "score", "ok", "genre", "isbn", "when", "contact", "author", "tags"],
    "additionalProperties": False,
    "$defs": {"person": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
                         "additionalProperties": False}},
}
FORMAT = {"format": {"type": "json_schema", "schema": SCHEMA}}
PACK = {"type": "object", "additionalProperties": False, "required": ["items"], "$defs": SCHEMA["$defs"],
        "properties": {"items": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["uid", "output"],
            "properties": {"uid": {"type": "string"},
                           "output": {k: v for k, v in SCHEMA.items() if k != "$defs"}}}}}}


def structured(client: anthropic.Anthropic, text: str, **params: object) -> anthropic.types.Message:
    return ask(client, text, output_config=FORMAT, **params)


def test_the_answer_is_a_document_of_the_schema(client: anthropic.Anthropic) -> None:
    message = structured(client, "Dune, a novel by Frank Herbert, 1965")
    assert message.stop_reason == "end_turn"
    document = json.loads(message.content[0].text)
    jsonschema.validate(document, SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert set(document) == set(SCHEMA["properties"])


def test_the_same_input_gets_the_same_document_and_another_input_another(
        client: anthropic.Anthropic) -> None:
    first = structured(client, "Dune, a novel by Frank Herbert, 1965").content[0].text
    assert structured(client, "Dune, a novel by Frank Herbert, 1965").content[0].text == first
    assert structured(client, "Emma, by Jane Austen").content[0].text != first


def test_string_values_are_words_of_the_input(client: anthropic.Anthropic) -> None:
    document = json.loads(structured(client, "alpha beta gamma delta").content[0].text)
    assert set(document["title"].split()) <= {"alpha", "beta", "gamma", "delta"}


def test_the_deprecated_output_format_parameter_is_honoured_too(client: anthropic.Anthropic) -> None:
    message = ask(client, "Dune", extra_body={"output_format": FORMAT["format"]})
    jsonschema.validate(json.loads(message.content[0].text), SCHEMA)


def test_a_packed_call_answers_one_item_per_block_each_as_that_block_alone(
        client: anthropic.Anthropic) -> None:
    blocks = [("a", "Dune by Frank Herbert"), ("b", "Emma by Jane Austen")]
    packed = "\n".join(f'<block uid="{uid}">\n{text}\n</block>' for uid, text in blocks)
    message = client.messages.create(model=MODEL, max_tokens=2000,
                                     messages=[{"role": "user", "content": packed}],
                                     output_config={"format": {"type": "json_schema", "schema": PACK}})
    reply = json.loads(message.content[0].text)
    jsonschema.validate(reply, PACK)
    assert [item["uid"] for item in reply["items"]] == ["a", "b"]
    for item, (_, text) in zip(reply["items"], blocks, strict=True):
        assert item["output"] == json.loads(structured(client, text).content[0].text)


def test_a_refusal_directive_declines_with_stop_reason_refusal(client: anthropic.Anthropic) -> None:
    message = structured(client, "something [[mock:refusal]]")
    assert message.stop_reason == "refusal"
    assert message.stop_details.type == "refusal"
    with pytest.raises(json.JSONDecodeError):
        json.loads(message.content[0].text)


def test_a_refusal_with_times_declines_only_that_often(client: anthropic.Anthropic) -> None:
    assert structured(client, "once [[mock:refusal times=1]]").stop_reason == "refusal"
    assert structured(client, "once [[mock:refusal times=1]]").stop_reason == "end_turn"


def test_the_max_tokens_directive_cuts_the_document(client: anthropic.Anthropic) -> None:
    message = structured(client, "cut [[mock:max_tokens]]")
    assert message.stop_reason == "max_tokens"
    with pytest.raises(json.JSONDecodeError):
        json.loads(message.content[0].text)


def test_a_document_longer_than_max_tokens_is_cut_there(client: anthropic.Anthropic) -> None:
    message = structured(client, "Dune, a novel by Frank Herbert, 1965", max_tokens=10)
    assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", 10)


def test_a_streamed_refusal_says_so_in_its_message_delta(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=500, output_config=FORMAT,
                                messages=[{"role": "user", "content": "no [[mock:refusal]]"}]) as stream:
        message = stream.get_final_message()
    assert message.stop_reason == "refusal"


@pytest.mark.parametrize(("schema", "words"), [
    ({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}},
      "additionalProperties": False}, "'minimum' keyword is not supported"),
    ({"type": "object", "properties": {"n": {"type": "integer"}}}, "'additionalProperties' must be"),
    ({"type": "object", "additionalProperties": False, "properties": {"n": {"$ref": "#/$defs/n"}},
      "$defs": {"n": {"type": "object", "additionalProperties": False,
                      "properties": {"m": {"$ref": "#/$defs/n"}}}}},
     "recursive schemas"),
    ({"type": "object", "additionalProperties": False,
      "properties": {"l": {"type": "array", "items": {"type": "string"}, "minItems": 2}}}, "'minItems'"),
], ids=["numeric-bound", "open-object", "recursive", "min-items"])
def test_a_schema_the_api_refuses_is_a_400_naming_the_problem(client: anthropic.Anthropic, schema,
                                                              words) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(client, "x", output_config={"format": {"type": "json_schema", "schema": schema}})
    assert words in caught.value.message


def test_the_schema_counts_as_input(client: anthropic.Anthropic) -> None:
    plain = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Dune"}])
    with_schema = client.messages.count_tokens(model=MODEL, output_config=FORMAT,
                                               messages=[{"role": "user", "content": "Dune"}])
    assert with_schema.input_tokens > plain.input_tokens


def test_another_schema_is_another_cached_prefix(client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": "A rule to follow. " * 1200, "cache_control": {"type": "ephemeral"}}]
    other = {"format": {"type": "json_schema", "schema": SCHEMA["$defs"]["person"]}}
    ask(client, "first", system=system, output_config=FORMAT)
    again = ask(client, "second", system=system, output_config=FORMAT)
    changed = ask(client, "third", system=system, output_config=other)
    assert again.usage.cache_read_input_tokens > 0
    assert changed.usage.cache_read_input_tokens == 0
