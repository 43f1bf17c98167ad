"""Structured outputs through the serving loop, against the mock provider over HTTP (the real SDK, in
this process): every success stored as a validated document, every answer that is none retried and
then dead-lettered with its text, packs mapped back by uid."""

import jsonschema
import pytest

from apps.failures.models import DiagnosticLog, PipelineFailure
from apps.runs.models import Attempt
from tests.factories import make_run
from tests.runs.helpers import serve_until_settled

pytestmark = pytest.mark.django_db(transaction=True)

BOOK = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "description": "the book's title"},
        "author": {"type": "object", "properties": {"name": {"type": "string"},
                                                   "email": {"type": "string", "format": "email"}},
                   "required": ["name"], "additionalProperties": False},
        "year": {"type": ["integer", "null"]},
        "genre": {"enum": ["fiction", "essay", "poetry"]},
    },
    "required": ["title", "author", "year", "genre"],
    "additionalProperties": False,
}
DOCUMENTS = [f"Book {i}: a novel by writer number {i}, printed in {1900 + i}." for i in range(12)]


def test_every_success_of_a_run_with_a_schema_is_a_validated_document(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, DOCUMENTS, output_schema=BOOK))
    assert (run.status, run.completed_blocks) == ("complete", 12)
    for block in run.blocks.all():
        jsonschema.validate(block.output_json, BOOK)
        assert block.output_json["title"]
    # Stored once: the document is the block's; its attempt keeps one only once a later pass supersedes it.
    attempt = Attempt.objects.filter(run=run, outcome="succeeded").first()
    assert attempt.output_json is None and attempt.block.output_json is not None


def test_the_schema_is_sent_as_output_config_on_every_call(owner, mock_key, mock):
    serve_until_settled(make_run(owner, mock_key, DOCUMENTS[:3], output_schema=BOOK))
    calls = mock.requests()
    assert len(calls) == 3
    assert all(call["structured"] for call in calls)


def test_a_run_without_a_schema_sends_none(owner, mock_key, mock):
    serve_until_settled(make_run(owner, mock_key, DOCUMENTS[:2]))
    assert not any(call["structured"] for call in mock.requests())


def test_structured_answers_are_queryable(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, DOCUMENTS, output_schema=BOOK))
    genres = {block.output_json["genre"] for block in run.blocks.all()}
    genre = genres.pop()
    assert run.blocks.filter(output_json__genre=genre).count() == sum(
        1 for block in run.blocks.all() if block.output_json["genre"] == genre)


def test_a_refusal_fails_the_attempt_with_output_invalid_and_is_retried(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, ["decline once [[mock:refusal times=1]]"],
                                       output_schema=BOOK))
    block = run.blocks.get()
    assert block.status == "succeeded"
    assert list(block.attempt_set.order_by("id").values_list("outcome", "error_code")) == [
        ("retry", "output_invalid"), ("succeeded", "")]
    jsonschema.validate(block.output_json, BOOK)


def test_a_truncated_document_fails_the_attempt_with_output_invalid_and_is_retried(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, ["cut once [[mock:max_tokens times=1]]"],
                                       output_schema=BOOK))
    block = run.blocks.get()
    assert block.status == "succeeded"
    first = block.attempt_set.order_by("id").first()
    assert (first.outcome, first.error_code) == ("retry", "output_invalid")
    assert "max_tokens" in first.error_message


def test_an_answer_that_is_never_a_document_is_dead_lettered_with_its_raw_text(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, ["always declines [[mock:refusal]]"],
                                       output_schema=BOOK, max_attempts=2))
    block = run.blocks.get()
    assert (run.status, block.status, block.error_code, block.attempts) == ("complete", "failed",
                                                                            "output_invalid", 2)
    assert block.output is None and block.output_json is None
    failure = PipelineFailure.objects.get(block=block)
    assert failure.error_code == "output_invalid"
    assert failure.context["raw_output"] == "I can't help with that request."
    assert DiagnosticLog.objects.filter(block=block, event_code="MODEL_PARSE_ERROR").exists()
    assert DiagnosticLog.objects.filter(block=block, event_code="PIPELINE_RETRY").count() == 1


def test_without_a_schema_a_refusal_still_fails_the_block_at_once(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, ["declines [[mock:refusal]]"]))
    block = run.blocks.get()
    assert (block.status, block.error_code, block.attempts) == ("failed", "refusal", 1)


def test_a_packed_run_with_a_schema_maps_every_uid(owner, mock_key, mock):
    alone = serve_until_settled(make_run(owner, mock_key, DOCUMENTS, output_schema=BOOK, name="alone"))
    packed = serve_until_settled(make_run(owner, mock_key, DOCUMENTS, output_schema=BOOK, name="packed",
                                          options={"pack_size": 4}))
    assert (packed.status, packed.completed_blocks, packed.split_events) == ("complete", 12, 0)
    assert packed.packs_processed == 3
    documents = dict(alone.blocks.values_list("uid", "output_json"))
    for uid, document in packed.blocks.values_list("uid", "output_json"):
        assert document == documents[uid]  # the same document, packed or alone
    # One call per pack, each answering its four blocks.
    assert Attempt.objects.filter(run=packed).values("request_id").distinct().count() == 3


def test_a_pack_whose_reply_leaves_a_uid_out_is_split_and_every_block_still_gets_its_document(
        owner, mock_key):
    inputs = [*DOCUMENTS[:3], "the missing one [[mock:drop_uid times=1]]"]
    run = serve_until_settled(make_run(owner, mock_key, inputs, output_schema=BOOK,
                                       options={"pack_size": 4}))
    assert (run.status, run.completed_blocks) == ("complete", 4)
    assert run.split_events == 1
    for block in run.blocks.all():
        jsonschema.validate(block.output_json, BOOK)


def test_a_refusal_in_a_pack_splits_it_down_to_the_block_that_declines(owner, mock_key):
    inputs = [*DOCUMENTS[:3], "declines [[mock:refusal times=1]]"]
    run = serve_until_settled(make_run(owner, mock_key, inputs, output_schema=BOOK,
                                       options={"pack_size": 4}))
    assert (run.status, run.completed_blocks, run.failed_blocks) == ("complete", 4, 0)
    assert run.split_events >= 1


def test_metadata_named_by_the_template_reaches_the_prompt_and_nothing_else_does(owner, mock_key):
    from apps.runs.services import BlockSpec, run_create

    blocks = [BlockSpec(uid="a", input="chapter one", metadata={"title": "Dune", "secret_id": "X-42"})]
    run = run_create(owner=owner, key=mock_key, blocks=blocks, model="claude-haiku-4-5",
                     prompt_template="Book: {metadata.title}\n{input}")
    block = serve_until_settled(run).blocks.get()
    # The mock answers the block's rendered text: "Reply <hash>: <its first words> ...".
    assert block.status == "succeeded"
    assert "Dune chapter one" in block.output
    assert "X-42" not in block.output
