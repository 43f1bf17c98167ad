"""Output parity between two runs, by uid, from the outputs the runs recorded (the pairs the provider
makes are in test_cost_report.py): exact matches, the uids that differ, JSON fields, bounded lists,
streaming in chunks."""

import json
from decimal import Decimal

import pytest

from apps.runs.models import Block, BlockStatus
from apps.runs.reporting.compare import MAX_FIELDS, outputs_parity, runs_compare
from apps.runs.services import BlockSpec, run_create
from tests.api.helpers import finish_block, record_attempt

pytestmark = pytest.mark.django_db


def run_with(owner, key, outputs: dict[str, str | None]):
    """A run with one block per uid, ended with its output (None: failed)."""
    run = run_create(owner=owner, key=key, model="claude-haiku-4-5",
                     blocks=[BlockSpec(uid=uid, input="text") for uid in outputs])
    for uid, output in outputs.items():
        status = BlockStatus.FAILED if output is None else BlockStatus.SUCCEEDED
        finish_block(run, uid, status, output=output)
    run.refresh_from_db()
    return run


def test_identical_outputs_are_exact_matches(owner, offline_key):
    a = run_with(owner, offline_key, {"x": "one", "y": "two"})
    b = run_with(owner, offline_key, {"y": "two", "x": "one"})
    parity = outputs_parity(a, b)
    assert (parity.compared, parity.exact_matches, parity.mismatches.count) == (2, 2, 0)
    assert parity.identical


def test_different_outputs_are_listed_by_uid(owner, offline_key):
    a = run_with(owner, offline_key, {"x": "one", "y": "two", "z": "three"})
    b = run_with(owner, offline_key, {"x": "one", "y": "TWO", "z": "3"})
    parity = outputs_parity(a, b)
    assert (parity.exact_matches, parity.mismatches.count, parity.mismatches.uids) == (1, 2, ["y", "z"])
    assert not parity.identical


def test_the_list_of_mismatches_is_bounded_and_keeps_the_whole_count(owner, offline_key):
    a = run_with(owner, offline_key, {f"u{i}": "same" for i in range(7)})
    b = run_with(owner, offline_key, {f"u{i}": f"other {i}" for i in range(7)})
    mismatches = outputs_parity(a, b, limit=3).mismatches
    assert (mismatches.count, mismatches.uids) == (7, ["u0", "u1", "u2"])
    assert mismatches.as_dict()["truncated"]


def test_a_block_that_failed_in_either_run_is_not_compared(owner, offline_key):
    a = run_with(owner, offline_key, {"x": "one", "y": None})
    b = run_with(owner, offline_key, {"x": None, "y": "two"})
    parity = outputs_parity(a, b)
    assert (parity.compared, parity.not_compared.count, parity.not_compared.uids) == (0, 2, ["x", "y"])


def test_uids_in_one_run_only_are_listed_for_each_side(owner, offline_key):
    a = run_with(owner, offline_key, {"x": "one", "only-a": "two"})
    b = run_with(owner, offline_key, {"x": "one", "only-b": "three", "also-b": "four"})
    parity = outputs_parity(a, b)
    assert (parity.only_in_a.count, parity.only_in_a.uids) == (1, ["only-a"])
    assert (parity.only_in_b.count, parity.only_in_b.uids) == (2, ["only-b", "also-b"])
    assert parity.exact_matches == 1


def test_json_outputs_are_compared_field_by_field(owner, offline_key):
    a = run_with(owner, offline_key, {
        "x": json.dumps({"score": 4, "feedback": "good"}),
        "y": json.dumps({"score": 2, "feedback": "thin"}),
        "z": json.dumps({"score": 5, "feedback": "fine"}),
    })
    b = run_with(owner, offline_key, {
        "x": json.dumps({"feedback": "good", "score": 4}),  # the same object, keys in another order
        "y": json.dumps({"score": 2, "feedback": "too thin"}),
        "z": json.dumps({"score": 3}),
    })
    parity = outputs_parity(a, b)
    assert parity.json_objects == 3
    score, feedback = parity.fields["score"], parity.fields["feedback"]
    assert (score.matches, score.differs.uids) == (2, ["z"])
    assert (feedback.matches, feedback.differs.uids) == (1, ["y", "z"])  # z: missing on one side


def test_a_json_object_in_a_code_fence_is_compared_by_its_fields(owner, offline_key):
    a = run_with(owner, offline_key, {"x": '```json\n{"score": 4}\n```'})
    b = run_with(owner, offline_key, {"x": '{"score": 4}'})
    parity = outputs_parity(a, b)
    assert (parity.mismatches.count, parity.fields["score"].matches) == (1, 1)


def test_outputs_that_are_not_json_objects_have_no_fields(owner, offline_key):
    a = run_with(owner, offline_key, {"x": "[1, 2]", "y": "plain text", "z": "{not json"})
    b = run_with(owner, offline_key, {"x": "[1, 2]", "y": "plain text", "z": "{not json"})
    parity = outputs_parity(a, b)
    assert (parity.json_objects, parity.fields, parity.exact_matches) == (0, {}, 3)


def test_fields_beyond_the_tracked_number_are_counted_not_listed(owner, offline_key):
    wide = json.dumps({f"f{i}": i for i in range(MAX_FIELDS + 5)})
    a = run_with(owner, offline_key, {"x": wide})
    b = run_with(owner, offline_key, {"x": wide})
    parity = outputs_parity(a, b)
    assert (len(parity.fields), parity.fields_untracked) == (MAX_FIELDS, 1)


def test_streaming_in_small_chunks_gives_the_same_report(owner, offline_key):
    a = run_with(owner, offline_key, {f"u{i}": f"out {i % 3}" for i in range(9)})
    b = run_with(owner, offline_key, {f"u{i}": f"out {i % 2}" for i in range(1, 11)})
    assert outputs_parity(a, b, chunk_size=2).as_dict() == outputs_parity(a, b, chunk_size=1000).as_dict()


def test_the_comparison_reports_each_runs_cost_per_succeeded_block(owner, offline_key):
    a = run_create(owner=owner, key=offline_key, model="claude-haiku-4-5",
                   blocks=[BlockSpec(uid=uid, input="text") for uid in ("x", "y")])
    finish_block(a, "x", BlockStatus.SUCCEEDED, output="one", cost="0.15")
    finish_block(a, "y", BlockStatus.FAILED, cost="0.15")
    for uid, request_id in (("x", "req_1"), ("y", "req_2")):
        record_attempt(Block.objects.get(run=a, uid=uid), request_id=request_id, input_tokens=10,
                       cost_usd=Decimal("0.15"))
    a.refresh_from_db()
    b = run_with(owner, offline_key, {"x": "one", "y": "two"})
    report = runs_compare(a, b)
    assert (report.a.cost_usd, report.a.cost_per_block_usd) == (Decimal("0.3"), Decimal("0.3"))
    assert (report.a.calls, report.a.attempts, report.a.tokens["input"]) == (2, 2, 20)
    assert report.b.cost_per_block_usd == 0 and report.cost_ratio == 0.0


# --- structured outputs and metadata -----------------------------------------------------------------

def structured_run_with(owner, key, documents: dict[str, dict], metadata: dict[str, dict] | None = None):
    """A run of structured answers: each block ended with its document (text spaced its own way)."""
    schema = {"type": "object", "properties": {}, "additionalProperties": False}
    run = run_create(owner=owner, key=key, model="claude-haiku-4-5", output_schema=schema,
                     blocks=[BlockSpec(uid=uid, input="text", metadata=(metadata or {}).get(uid))
                             for uid in documents])
    for uid, document in documents.items():
        finish_block(run, uid, BlockStatus.SUCCEEDED, output=json.dumps(document, indent=2))
        Block.objects.filter(run=run, uid=uid).update(output_json=document)
    run.refresh_from_db()
    return run


def test_structured_answers_match_as_documents_whatever_their_spacing(owner, offline_key):
    a = structured_run_with(owner, offline_key, {"x": {"label": "spam", "score": 1}})
    b = structured_run_with(owner, offline_key, {"x": {"score": 1, "label": "spam"}})
    Block.objects.filter(run=b, uid="x").update(output='{"score":1,"label":"spam"}')
    parity = outputs_parity(a, b)
    assert (parity.exact_matches, parity.mismatches.count) == (1, 0)


def test_structured_answers_are_compared_field_by_field_into_nested_objects(owner, offline_key):
    a = structured_run_with(owner, offline_key, {"x": {"label": "spam", "sender": {"name": "Ann", "rank": 1}},
                                                 "y": {"label": "ham", "sender": {"name": "Bo", "rank": 2}}})
    b = structured_run_with(owner, offline_key, {"x": {"label": "spam", "sender": {"name": "Ann", "rank": 3}},
                                                 "y": {"label": "spam", "sender": {"name": "Bo", "rank": 2}}})
    fields = outputs_parity(a, b).fields
    assert (fields["label"].matches, fields["label"].differs.uids) == (1, ["y"])
    assert (fields["sender.name"].matches, fields["sender.name"].differs.count) == (2, 0)
    assert (fields["sender.rank"].matches, fields["sender.rank"].differs.uids) == (1, ["x"])


def test_a_field_missing_on_one_side_is_a_difference_not_a_crash(owner, offline_key):
    a = structured_run_with(owner, offline_key, {"x": {"label": "spam", "note": {"why": "link"}}})
    b = structured_run_with(owner, offline_key, {"x": {"label": "spam"}})
    parity = outputs_parity(a, b)
    assert parity.mismatches.uids == ["x"]
    assert parity.fields["note.why"].differs.uids == ["x"]
    assert parity.fields["label"].matches == 1


def test_listed_uids_come_with_their_blocks_metadata(owner, offline_key):
    a = structured_run_with(owner, offline_key, {"x": {"v": 1}, "y": {"v": 2}, "z": {"v": 3}},
                            metadata={"x": {"record": 1}, "y": {"record": 2}})
    b = structured_run_with(owner, offline_key, {"x": {"v": 1}, "y": {"v": 0}})
    parity = outputs_parity(a, b)
    assert parity.metadata == {"y": {"record": 2}}  # y differs; z is only in A and has none
    assert parity.as_dict()["metadata"] == {"y": {"record": 2}}


def test_pairs_are_counted_by_the_models_that_answered_them(owner, offline_key):
    """A run whose fallback model answered some blocks, against a run of the primary model: the
    fallback's answers are compared apart (issue 22)."""
    a = run_with(owner, offline_key, {"x": "one", "y": "two", "z": "three"})
    b = run_with(owner, offline_key, {"x": "one", "y": "TWO", "z": "three"})
    Block.objects.filter(run=a, uid__in=["y", "z"]).update(model="claude-sonnet-4-6")
    Block.objects.filter(run__in=[a, b], model="").update(model="claude-haiku-4-5")
    Block.objects.filter(run=a, uid="x").update(model="claude-haiku-4-5")
    parity = outputs_parity(a, b)
    assert parity.as_dict()["by_models"] == {
        "claude-haiku-4-5 | claude-haiku-4-5": {"compared": 1, "exact_matches": 1},
        "claude-sonnet-4-6 | claude-haiku-4-5": {"compared": 2, "exact_matches": 1},
    }
