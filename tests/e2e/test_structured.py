"""Structured outputs with a real Celery worker and beat, the mock provider in its own process: a packed
run with a schema maps every uid to a validated document (and the export carries each block's metadata
beside its fields); answers that are none (a refusal, a cut document) fail their attempt with
output_invalid and are retried, then dead-lettered with their text."""

import csv
import io

import jsonschema
import pytest
from rest_framework.test import APIClient

from apps.failures.models import PipelineFailure
from apps.runs.models import Attempt
from apps.runs.services import BlockSpec, run_create
from tests.e2e.conftest import run_status, wait_for
from tests.e2e.test_workers import assert_counts_equal_states
from tests.factories import MODEL

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

INVOICE = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string"},
        "total": {"type": "number"},
        "due": {"type": "string", "format": "date"},
    },
    "required": ["vendor", "total", "due"],
    "additionalProperties": False,
}


def test_a_packed_structured_run_on_a_worker_maps_every_uid_to_a_validated_document(owner, e2e_key,
                                                                                    stack):
    stack.worker("w1")
    stack.beat()
    texts = [f"Invoice {i} from supplier number {i}, total {i * 10} euros, due in March." for i in range(40)]
    blocks = [BlockSpec(uid=f"inv-{i}", input=text, metadata={"record_id": 1000 + i, "batch": "march"})
              for i, text in enumerate(texts)]
    run = run_create(owner=owner, key=e2e_key, blocks=blocks, model=MODEL, output_schema=INVOICE,
                     options={"pack_size": 8}, parallelism=8)

    wait_for(lambda: run_status(run) == "complete", timeout=120, what="run to complete", stack=stack)

    assert_counts_equal_states(run)
    assert (run.completed_blocks, run.initial_pack_count, run.split_events) == (40, 5, 0)
    for document in run.blocks.values_list("output_json", flat=True):
        jsonschema.validate(document, INVOICE)
    api = APIClient()
    api.force_authenticate(owner)
    response = api.get(f"/api/v1/runs/{run.pk}/results/?format=csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["metadata.record_id"] for row in rows] == [str(1000 + i) for i in range(40)]
    assert all(row["output.vendor"] and row["output.due"] for row in rows)


def test_on_a_worker_a_refusal_and_a_cut_document_fail_with_output_invalid_and_are_retried(
        owner, e2e_key, stack):
    stack.worker("w1")
    stack.beat()
    texts = [f"Invoice {i} from supplier number {i}." for i in range(10)]
    texts[3] = "Invoice that is declined once [[mock:refusal times=1]]"
    texts[7] = "Invoice whose answer is cut once [[mock:max_tokens times=1]]"
    texts[9] = "Invoice that is always declined [[mock:refusal]]"
    blocks = [BlockSpec(uid=f"inv-{i}", input=text) for i, text in enumerate(texts)]
    run = run_create(owner=owner, key=e2e_key, blocks=blocks, model=MODEL, output_schema=INVOICE,
                     max_attempts=3)

    wait_for(lambda: run_status(run) == "complete", timeout=120, what="run to complete", stack=stack)

    assert_counts_equal_states(run)
    assert (run.completed_blocks, run.failed_blocks) == (9, 1)
    retried = Attempt.objects.filter(run=run, outcome="retry", error_code="output_invalid")
    assert sorted(retried.values_list("block__uid", flat=True)) == ["inv-3", "inv-7", "inv-9", "inv-9"]
    doomed = run.blocks.get(uid="inv-9")
    assert (doomed.error_code, doomed.attempts) == ("output_invalid", 3)
    failure = PipelineFailure.objects.get(block=doomed)
    assert failure.context["raw_output"] == "I can't help with that request."
