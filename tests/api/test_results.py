"""GET /api/v1/runs/{id}/results/: every block's result as streamed JSONL, in block order."""

import json

from apps.runs.models import BlockStatus
from tests.api.helpers import error_of, finish_block


def lines(response) -> list[dict]:
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


def results_url(run) -> str:
    return f"/api/v1/runs/{run.pk}/results/"


def test_results_stream_as_ndjson(owner, run, api):
    response = api(owner).get(results_url(run))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.pk}.jsonl"'


def test_there_is_one_line_per_block_in_block_order(owner, run, api):
    assert [line["uid"] for line in lines(api(owner).get(results_url(run)))] == ["b0", "b1", "b2"]


def test_a_line_carries_status_output_error_and_usage(owner, run, api):
    finish_block(run, "b0", BlockStatus.SUCCEEDED, output="ONE", cost="0.5")
    finish_block(run, "b1", BlockStatus.FAILED, error_code="overloaded", error_message="busy")
    done, failed, waiting = lines(api(owner).get(results_url(run)))
    assert (done["status"], done["output"], done["error"]) == ("succeeded", "ONE", None)
    assert done["usage"] == {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 0, "cost_usd": "0.50000000"}
    assert (failed["status"], failed["error"]) == ("failed", {"code": "overloaded", "message": "busy"})
    assert (waiting["status"], waiting["output"]) == ("pending", None)


def test_many_blocks_are_written_in_batches_of_lines(owner, offline_key, api):
    from tests.factories import make_run

    run = make_run(owner, offline_key, [f"text {i}" for i in range(1200)])
    response = api(owner).get(results_url(run))
    chunks = list(response.streaming_content)
    assert len(chunks) == 3  # 500 + 500 + 200 lines
    assert sum(chunk.count(b"\n") for chunk in chunks) == 1200


def test_results_may_be_asked_for_as_ndjson(owner, run, api):
    response = api(owner).get(results_url(run), HTTP_ACCEPT="application/x-ndjson")
    assert response.status_code == 200


def test_staff_read_any_runs_results(staff, run, api):
    assert len(lines(api(staff).get(results_url(run)))) == 3


def test_another_users_results_are_a_404(outsider, run, api):
    response = api(outsider).get(results_url(run))
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
