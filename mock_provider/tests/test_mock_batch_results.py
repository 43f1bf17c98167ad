"""What a message batch's results hold: one line per request, answered exactly as /v1/messages would
answer the same params (replies, usage, errors, the prompt cache, directives and random faults)."""

import json
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types.messages import MessageBatchSucceededResult

from mock_provider.testing import TEST_API_KEY, MockHandle
from mock_provider.tests.batching import (
    SLOW_MS,
    counts,
    create,
    errored,
    item,
    params,
    results,
    run,
    succeeded,
)
from mock_provider.tests.conftest import MODEL, ask

# Sonnet 4.6 caches prompts of 1,024 tokens and more; this system prompt is 1,160 tokens.
CACHE_MODEL = "claude-sonnet-4-6"
POLICY = "You are a careful assistant. " * 160
POLICY_TOKENS = 1_160


# --- results -----------------------------------------------------------------------------------------

def test_the_results_hold_one_outcome_per_request(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(batch_expire_after_s=60)
    no_max_tokens = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    batch = create(
        client,
        item("fine", "Summarise the weather."),
        item("by-directive", "[[mock:status=500]] Summarise the news."),
        {"custom_id": "bad-params", "params": no_max_tokens},
        item("held-back", "[[mock:expire]] Summarise the sports."),
    )

    mock.advance(30)
    # Everything else is answered, but the batch waits for its held-back request to expire.
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    mock.advance(31)
    ended = client.messages.batches.retrieve(batch.id)
    outcome = results(client, batch.id)

    assert counts(ended) == {"processing": 0, "succeeded": 1, "errored": 2, "canceled": 0, "expired": 1}
    assert ended.ended_at == ended.expires_at
    assert succeeded(outcome["fine"]).content[0].text.startswith("Reply ")
    assert errored(outcome["by-directive"]) == ("api_error", "Internal server error")
    assert errored(outcome["bad-params"]) == ("invalid_request_error", "max_tokens: Field required")
    assert outcome["held-back"].type == "expired"


def test_requests_not_answered_by_expires_at_expire(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(batch_delay_ms=SLOW_MS, batch_expire_after_s=250)  # due at 100, 200, 300, 400 s
    batch = create(client, item("a"), item("b"), item("c"), item("d"))

    mock.advance(251)
    outcome = results(client, batch.id)

    assert counts(client.messages.batches.retrieve(batch.id))["expired"] == 2
    assert [outcome[c].type for c in "abcd"] == ["succeeded", "succeeded", "expired", "expired"]


def test_every_request_appears_exactly_once_in_the_results(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    ids = [f"block-{i}" for i in range(50)]
    batch = create(client, *(item(i, f"text {i}") for i in ids))
    mock.advance(1)

    lines = list(client.messages.batches.results(batch.id))

    assert sorted(line.custom_id for line in lines) == sorted(ids)


@pytest.mark.parametrize("body", [
    params("Translate the weather report into French."),
    params("A long answer, cut short.", max_tokens=5),
    params("Stop early.", stop_sequences=[":"]),
    params("Write exactly this much. [[mock:output_tokens=40]]"),
    params("The block itself.", system="Some system prompt."),
    params('<block uid="b-1">\nThe first paragraph.\n</block>\n<block uid="b-2">\nThe second.\n</block>'),
], ids=["plain", "max_tokens", "stop_sequence", "output_tokens", "system", "packed"])
def test_a_succeeded_request_gets_what_v1_messages_answers_for_the_same_params(
    mock: MockHandle, client: anthropic.Anthropic, body: dict[str, Any],
) -> None:
    direct = client.messages.create(**body)

    batched = succeeded(run(mock, client, {"custom_id": "same", "params": body})["same"])

    assert batched.id.startswith("msg_") and batched.id != direct.id
    assert batched.content == direct.content
    assert (batched.stop_reason, batched.stop_sequence) == (direct.stop_reason, direct.stop_sequence)
    same = {"service_tier"}
    assert batched.usage.model_dump(exclude=same) == direct.usage.model_dump(exclude=same)
    assert (batched.usage.service_tier, direct.usage.service_tier) == ("batch", "standard")


@pytest.mark.parametrize("body", [
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    params("hi", model="claude-unknown-9"),
    params("[[mock:status=529]] hi"),
    params("[[mock:bogus]] hi"),
    params("hi", max_tokens=10**6),
], ids=["missing max_tokens", "unknown model", "status directive", "bad directive", "max_tokens too high"])
def test_an_errored_request_carries_the_error_v1_messages_answers_for_the_same_params(
    mock: MockHandle, client: anthropic.Anthropic, body: dict[str, Any],
) -> None:
    with pytest.raises(anthropic.APIStatusError) as direct:
        # The SDK's low-level post: messages.create itself would refuse some of these before sending.
        client.post("/v1/messages", body=body, cast_to=httpx2.Response)

    result = run(mock, client, {"custom_id": "same", "params": body})["same"]

    assert isinstance(direct.value.body, dict)
    assert errored(result) == (direct.value.body["error"]["type"], direct.value.body["error"]["message"])


def test_an_errored_result_is_a_whole_error_body(mock: MockHandle, client: anthropic.Anthropic) -> None:
    batch = create(client, item("x", "[[mock:status=403]] hi"))
    mock.advance(1)
    results_url = client.messages.batches.retrieve(batch.id).results_url
    assert results_url is not None

    line = json.loads(httpx2.get(results_url, headers={"x-api-key": TEST_API_KEY,
                                                        "anthropic-version": "2023-06-01"}).text)

    assert line["custom_id"] == "x" and line["result"]["type"] == "errored"
    error = line["result"]["error"]
    assert set(error) == {"type", "error", "request_id"} and error["type"] == "error"
    assert error["error"]["type"] == "permission_error"
    assert error["error"]["message"] == "Your API key does not have permission to use the specified resource."
    assert error["request_id"].startswith("req_")


def test_a_streaming_request_in_a_batch_is_errored(mock: MockHandle, client: anthropic.Anthropic) -> None:
    result = run(mock, client, {"custom_id": "s", "params": params("hi", stream=True)})["s"]

    assert errored(result)[0] == "invalid_request_error"


def test_a_request_is_validated_under_the_batchs_api_version(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    # SDK 2.x sends anthropic-version 2026-10-21, which no longer accepts sampling parameters.
    result = run(mock, client, {"custom_id": "t", "params": params("hi", temperature=0.5)})["t"]

    assert errored(result) == ("invalid_request_error", "temperature: Extra inputs are not permitted")


def test_the_results_of_a_batch_still_in_progress_are_refused(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    mock.configure(batch_delay_ms=SLOW_MS)
    batch = create(client, item("a"))

    with pytest.raises(anthropic.AnthropicError):  # the SDK itself refuses: there is no results_url yet
        client.messages.batches.results(batch.id)
    with pytest.raises(anthropic.BadRequestError):
        client.get(f"/v1/messages/batches/{batch.id}/results", cast_to=httpx2.Response)


def test_the_results_of_an_unknown_batch_are_not_found(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        client.get("/v1/messages/batches/msgbatch_nope/results", cast_to=httpx2.Response)


def test_the_results_file_is_jsonl_with_a_request_id(mock: MockHandle, client: anthropic.Anthropic) -> None:
    batch = create(client, item("a"), item("b"))
    mock.advance(1)

    with client.messages.batches.with_streaming_response.results(batch.id) as response:
        headers = response.headers
        lines = [json.loads(line) for line in response.iter_lines() if line]

    assert headers["content-type"] == "application/x-jsonl"
    assert headers["request-id"].startswith("req_")
    assert sorted(line["custom_id"] for line in lines) == ["a", "b"]


def test_the_sdk_streams_results_line_by_line(mock: MockHandle, client: anthropic.Anthropic) -> None:
    batch = create(client, *(item(f"r{i}", f"text {i} " * 200) for i in range(20)))  # ~100 KB of results
    mock.advance(1)

    decoder = client.messages.batches.results(batch.id)
    first = next(decoder)
    rest = list(decoder)

    assert isinstance(first.result, MessageBatchSucceededResult)
    assert len(rest) == 19


# --- caching, directives and faults ----------------------------------------------------------------

def cached_item(custom_id: str, question: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "params": {
        "model": CACHE_MODEL, "max_tokens": 50,
        "system": [{"type": "text", "text": POLICY, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": question}],
    }}


def cached_call(client: anthropic.Anthropic) -> anthropic.types.Usage:
    return client.messages.create(**cached_item("-", "Question?")["params"]).usage


def test_a_request_reads_the_cache_an_earlier_request_of_the_batch_wrote(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    outcome = run(mock, client, cached_item("first", "Question one?"), cached_item("second", "Question two?"))

    first, second = succeeded(outcome["first"]).usage, succeeded(outcome["second"]).usage
    assert (first.cache_creation_input_tokens, first.cache_read_input_tokens) == (POLICY_TOKENS, 0)
    assert (second.cache_creation_input_tokens, second.cache_read_input_tokens) == (0, POLICY_TOKENS)


def test_a_batch_reads_what_v1_messages_cached_with_the_same_key(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    cached_call(client)

    usage = succeeded(run(mock, client, cached_item("q", "Question?"))["q"]).usage

    assert usage.cache_read_input_tokens == POLICY_TOKENS


def test_a_request_is_answered_at_its_own_time_when_the_clock_jumps_past_it(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    cached_call(client)  # a 5-minute entry
    mock.configure(batch_delay_ms=400_000)  # due at 200 s and 400 s
    batch = create(client, cached_item("first", "One?"), cached_item("second", "Two?"))

    mock.advance(1_000)  # one jump, far past both (and past the entry's TTL)
    outcome = results(client, batch.id)

    # Answered at 200 s, inside the TTL; the hit refreshes it, so at 400 s the entry is still live.
    assert succeeded(outcome["first"]).usage.cache_read_input_tokens == POLICY_TOKENS
    assert succeeded(outcome["second"]).usage.cache_read_input_tokens == POLICY_TOKENS


def test_a_request_after_the_ttl_writes_the_cache_again(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    cached_call(client)
    mock.configure(batch_delay_ms=301_000)

    batch = create(client, cached_item("late", "Question?"))
    mock.advance(302)

    usage = succeeded(results(client, batch.id)["late"]).usage
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (POLICY_TOKENS, 0)


def test_a_directive_with_times_counts_across_batches(mock: MockHandle, client: anthropic.Anthropic) -> None:
    text = "Block 7 [[mock:status=529 times=1]]"

    first = run(mock, client, item("b7", text))["b7"]
    retried = run(mock, client, item("b7", text))["b7"]

    assert errored(first)[0] == "overloaded_error"
    assert succeeded(retried).stop_reason == "end_turn"


def test_an_expire_directive_with_times_expires_only_the_first_batch(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    mock.configure(batch_expire_after_s=10)
    text = "Block 8 [[mock:expire times=1]]"
    first = create(client, item("b8", text))
    mock.advance(11)

    retried = run(mock, client, item("b8", text))["b8"]

    assert results(client, first.id)["b8"].type == "expired"
    assert succeeded(retried).stop_reason == "end_turn"


def test_v1_messages_ignores_the_expire_directive(client: anthropic.Anthropic) -> None:
    assert ask(client, "[[mock:expire]] hi").stop_reason == "end_turn"


@pytest.mark.parametrize(("kind", "error_type"), [
    ("529", "overloaded_error"),
    ("429_no_retry_after", "rate_limit_error"),
    ("hang", "timeout_error"),
    ("drop", "api_error"),
])
def test_a_random_fault_makes_a_batch_request_errored(
    mock: MockHandle, client: anthropic.Anthropic, kind: str, error_type: str,
) -> None:
    mock.configure(fault_rates={kind: 1.0})

    result = run(mock, client, item("a"))["a"]

    assert errored(result)[0] == error_type
    assert mock.stats()["batches"]["by_fault"] == {f"random:{kind}": 1}


def test_a_random_stream_error_does_not_apply_to_batch_requests(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    mock.configure(fault_rates={"stream_error": 1.0})

    assert succeeded(run(mock, client, item("a"))["a"]).stop_reason == "end_turn"


def test_batches_do_not_shift_the_random_faults_of_v1_messages(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    mock.configure(fault_rates={"500": 0.5}, seed=7)

    def outcomes(with_batch: bool) -> list[bool]:
        seen = []
        for i in range(12):
            if with_batch and i == 6:
                run(mock, client, *(item(f"x{j}") for j in range(5)))
            try:
                ask(client, f"block {i}", max_tokens=5)
                seen.append(True)
            except anthropic.InternalServerError:
                seen.append(False)
        return seen

    alone = outcomes(with_batch=False)
    mock.reset()
    assert outcomes(with_batch=True) == alone
    assert True in alone and False in alone
