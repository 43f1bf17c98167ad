"""The Message Batches API through the real SDK, sync and async: a batch's life from create to delete,
listing, and what create refuses up front. What the results hold: test_mock_batch_results.py."""

import asyncio
import json
from datetime import timedelta

import anthropic
import httpx2
import pytest

from mock_provider.testing import MockHandle, running_mock
from mock_provider.tests.batching import SLOW_MS, counts, create, item, params, results, run, wait_until

# --- create and retrieve ---------------------------------------------------------------------------

def test_a_new_batch_is_in_progress_with_every_request_processing(client: anthropic.Anthropic) -> None:
    batch = create(client, item("a"), item("b"), item("c"))

    assert batch.id.startswith("msgbatch_") and batch.type == "message_batch"
    assert batch.processing_status == "in_progress"
    assert counts(batch) == {"processing": 3, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    assert batch.results_url is None
    assert batch.ended_at is None and batch.cancel_initiated_at is None and batch.archived_at is None
    assert batch.expires_at - batch.created_at == timedelta(hours=24)


def test_counts_stay_at_processing_until_the_whole_batch_has_ended(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    mock.configure(batch_delay_ms=SLOW_MS)
    batch = create(client, item("a"), item("b"), item("c"), item("d"))

    mock.advance(350)  # three of the four are answered
    midway = client.messages.batches.retrieve(batch.id)

    assert midway.processing_status == "in_progress"
    assert counts(midway)["processing"] == 4 and counts(midway)["succeeded"] == 0


def test_a_batch_ends_once_its_processing_time_has_passed_on_the_mocks_clock(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    mock.configure(batch_delay_ms=SLOW_MS)
    batch = create(client, item("a"), item("b"))

    mock.advance(401)
    ended = client.messages.batches.retrieve(batch.id)

    assert ended.processing_status == "ended"
    assert counts(ended) == {"processing": 0, "succeeded": 2, "errored": 0, "canceled": 0, "expired": 0}
    assert ended.ended_at is not None
    # It ends when its last request is answered: created_at + the delay, on the mock's clock.
    assert abs((ended.ended_at - ended.created_at) - timedelta(seconds=400)) < timedelta(milliseconds=1)
    assert ended.results_url == f"{mock.base_url}/v1/messages/batches/{batch.id}/results"


def test_a_batch_ends_in_real_time_without_the_clock_being_moved(client: anthropic.Anthropic) -> None:
    batch = create(client, item("a"), item("b"))

    wait_until(lambda: client.messages.batches.retrieve(batch.id).processing_status == "ended")

    assert counts(client.messages.batches.retrieve(batch.id))["succeeded"] == 2


def test_a_batch_ends_without_anyone_reading_it(mock: MockHandle, client: anthropic.Anthropic) -> None:
    create(client, item("a"))

    # The stats do not settle batches: only the mock's background task can have ended this one.
    wait_until(lambda: mock.stats()["batches"]["ended"] == 1)

    assert mock.stats()["batches"]["results"]["succeeded"] == 1


def test_an_unknown_batch_is_not_found(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.batches.retrieve("msgbatch_nope")

    assert caught.value.type == "not_found_error"


# --- list ----------------------------------------------------------------------------------------------

def five_batches(client: anthropic.Anthropic) -> list[str]:
    return [create(client, item(f"only-{i}")).id for i in range(5)]


def test_list_returns_the_newest_batches_first_with_cursors(client: anthropic.Anthropic) -> None:
    ids = five_batches(client)

    page = client.messages.batches.list(limit=2)

    assert [b.id for b in page.data] == [ids[4], ids[3]]
    assert (page.has_more, page.first_id, page.last_id) == (True, ids[4], ids[3])


def test_the_sdk_iterates_every_page_of_the_list(client: anthropic.Anthropic) -> None:
    ids = five_batches(client)

    assert [b.id for b in client.messages.batches.list(limit=2)] == ids[::-1]


def test_after_id_and_before_id_page_either_way(client: anthropic.Anthropic) -> None:
    ids = five_batches(client)

    older = client.messages.batches.list(after_id=ids[3], limit=2)
    newer = client.messages.batches.list(before_id=ids[1], limit=2)

    assert [b.id for b in older.data] == [ids[2], ids[1]] and older.has_more
    assert [b.id for b in newer.data] == [ids[3], ids[2]] and newer.has_more


def test_the_last_page_has_no_more(client: anthropic.Anthropic) -> None:
    ids = five_batches(client)

    page = client.messages.batches.list(after_id=ids[1])

    assert [b.id for b in page.data] == [ids[0]] and page.has_more is False


@pytest.mark.parametrize("limit", [0, 1001])
def test_a_limit_outside_1_to_1000_is_refused(client: anthropic.Anthropic, limit: int) -> None:
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.list(limit=limit)


def test_a_key_sees_only_its_own_batches(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mine = create(client, item("a"))
    other = mock.client(api_key="sk-someone-else")

    theirs = create(other, item("a"))

    assert [b.id for b in other.messages.batches.list()] == [theirs.id]
    with pytest.raises(anthropic.NotFoundError):
        other.messages.batches.retrieve(mine.id)


# --- cancel and delete ---------------------------------------------------------------------------------

def test_a_canceled_batch_ends_once_the_request_in_progress_completes(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    mock.configure(batch_delay_ms=SLOW_MS)  # due at 100, 200, 300, 400 s
    batch = create(client, item("a"), item("b"), item("c"), item("d"))
    mock.advance(150)

    canceling = client.messages.batches.cancel(batch.id)
    still = client.messages.batches.retrieve(batch.id)
    mock.advance(50)  # "b" was in progress: it completes, then the batch ends
    ended = client.messages.batches.retrieve(batch.id)

    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    assert still.processing_status == "canceling"
    assert ended.processing_status == "ended"
    assert counts(ended) == {"processing": 0, "succeeded": 2, "errored": 0, "canceled": 2, "expired": 0}
    outcome = results(client, batch.id)
    assert [outcome[c].type for c in "abcd"] == ["succeeded", "succeeded", "canceled", "canceled"]


def test_canceling_a_batch_waiting_only_for_held_back_requests_ends_it(
    mock: MockHandle, client: anthropic.Anthropic,
) -> None:
    batch = create(client, item("a"), item("b", "[[mock:expire]] hi"))
    mock.advance(1)

    client.messages.batches.cancel(batch.id)
    ended = client.messages.batches.retrieve(batch.id)

    assert ended.processing_status == "ended"
    assert (counts(ended)["succeeded"], counts(ended)["canceled"]) == (1, 1)


def test_canceling_twice_keeps_the_first_cancel(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(batch_delay_ms=SLOW_MS)
    batch = create(client, item("a"), item("b"))
    first = client.messages.batches.cancel(batch.id)
    mock.advance(1)

    second = client.messages.batches.cancel(batch.id)

    assert second.processing_status == "canceling"
    assert second.cancel_initiated_at == first.cancel_initiated_at


def test_canceling_an_ended_batch_is_refused(mock: MockHandle, client: anthropic.Anthropic) -> None:
    batch = create(client, item("a"))
    mock.advance(1)

    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.cancel(batch.id)


def test_a_batch_still_processing_cannot_be_deleted(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(batch_delay_ms=SLOW_MS)
    batch = create(client, item("a"))

    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.batches.delete(batch.id)

    assert caught.value.type == "invalid_request_error"
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"


def test_an_ended_batch_is_deleted_and_then_gone(mock: MockHandle, client: anthropic.Anthropic) -> None:
    batch = create(client, item("a"))
    mock.advance(1)

    deleted = client.messages.batches.delete(batch.id)

    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)
    assert list(client.messages.batches.list()) == []


# --- what create refuses up front ----------------------------------------------------------------------

@pytest.mark.parametrize("custom_id", ["", "x" * 65, "with space", "dot.ted", "ünïcode", "slash/ed"])
def test_a_custom_id_outside_the_pattern_is_refused(client: anthropic.Anthropic, custom_id: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(client, item("fine"), item(custom_id))

    assert caught.value.type == "invalid_request_error"
    assert "requests.1.custom_id" in caught.value.message and "^[a-zA-Z0-9_-]{1,64}$" in caught.value.message


def test_a_64_character_custom_id_of_letters_digits_dashes_and_underscores_is_accepted(
    client: anthropic.Anthropic,
) -> None:
    custom_id = ("Ab9_-" * 13)[:64]

    assert create(client, item(custom_id)).request_counts.processing == 1


def test_a_custom_id_used_twice_in_a_batch_is_refused(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(client, item("same"), item("other"), item("same"))

    assert "requests.2.custom_id" in caught.value.message and "unique" in caught.value.message


def test_a_request_without_params_is_refused(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(client, {"custom_id": "a"})

    assert "requests.0.params: Field required" in caught.value.message


def test_an_empty_batch_is_refused(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError):
        create(client)


def test_more_requests_than_the_limit_are_refused(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(batch_max_requests=3)

    assert create(client, item("a"), item("b"), item("c")).request_counts.processing == 3
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(client, item("a"), item("b"), item("c"), item("d"))
    assert "at most 3" in caught.value.message


def post_batch(mock: MockHandle, body: bytes) -> httpx2.Response:
    # Raw HTTP: the SDK's own request building would dominate the time of bodies this large.
    return httpx2.post(f"{mock.base_url}/v1/messages/batches", content=body, timeout=60, headers={
        "x-api-key": "sk-test", "anthropic-version": "2023-06-01", "content-type": "application/json"})


def test_the_default_limit_is_100000_requests(mock: MockHandle) -> None:
    one = json.dumps({"custom_id": "ID", "params": {}})
    body = '{"requests":[' + ",".join(one.replace("ID", f"r{i}") for i in range(100_001)) + "]}"

    response = post_batch(mock, body.encode())

    assert response.status_code == 400
    assert "at most 100000 items" in response.json()["error"]["message"]


def test_a_batch_may_be_larger_than_a_messages_request(mock: MockHandle) -> None:
    big = "x" * (33 * 1024 * 1024)  # over the 32 MB of /v1/messages, well under the 256 MB of a batch
    body = json.dumps({"requests": [{"custom_id": "big", "params": params(big)}]}).encode()

    response = post_batch(mock, body)

    assert response.status_code == 200 and response.json()["processing_status"] == "in_progress"


def test_a_body_over_the_batch_size_limit_is_too_large(mock: MockHandle, client: anthropic.Anthropic) -> None:
    mock.configure(batch_max_body_bytes=10_000)

    with pytest.raises(anthropic.RequestTooLargeError) as caught:
        create(client, item("a", "x" * 20_000))

    assert caught.value.status_code == 413 and caught.value.type == "request_too_large"


def test_a_key_outside_the_configured_set_cannot_use_batches() -> None:
    with running_mock(api_keys=["sk-good"]) as mock:
        bad = mock.client(api_key="sk-bad")
        with pytest.raises(anthropic.AuthenticationError):
            create(bad, item("a"))
        with pytest.raises(anthropic.AuthenticationError):
            bad.messages.batches.list()
        assert create(mock.client(api_key="sk-good"), item("a")).processing_status == "in_progress"


def test_every_batch_response_carries_a_request_id(mock: MockHandle, client: anthropic.Anthropic) -> None:
    raw = client.messages.batches.with_raw_response
    created = raw.create(requests=[item("a")])  # type: ignore[list-item]
    batch_id = created.parse().id
    responses = [created, raw.retrieve(batch_id), raw.list(), raw.cancel(batch_id)]
    mock.advance(1)
    responses.append(raw.delete(batch_id))

    assert all(r.headers["request-id"].startswith("req_") for r in responses)


# --- stats, reset --------------------------------------------------------------------------------------

def test_stats_count_batches_and_their_results(mock: MockHandle, client: anthropic.Anthropic) -> None:
    run(mock, client, item("a"), item("b", "[[mock:status=500]] hi"))
    mock.configure(batch_delay_ms=SLOW_MS)
    canceled = create(client, item("c"), item("d"))
    client.messages.batches.cancel(canceled.id)
    mock.advance(401)

    batches = mock.stats()["batches"]

    assert {k: batches[k] for k in ("created", "canceled", "ended", "deleted")} == {
        "created": 2, "canceled": 1, "ended": 2, "deleted": 0}
    assert batches["results"] == {"succeeded": 2, "errored": 1, "canceled": 1, "expired": 0}
    assert batches["by_fault"] == {"directive:status=500": 1}
    assert batches["tokens"]["output_tokens"] > 0


def test_the_log_records_batch_calls_by_route(mock: MockHandle, client: anthropic.Anthropic) -> None:
    batch = create(client, item("a"))
    client.messages.batches.retrieve(batch.id)

    stats = mock.stats()

    assert [(r["method"], r["path"], r["status"]) for r in stats["log"]] == [
        ("POST", "/v1/messages/batches", 200), ("GET", f"/v1/messages/batches/{batch.id}", 200)]
    assert stats["by_path"] == {"/v1/messages/batches": 1, "/v1/messages/batches/{message_batch_id}": 1}


def test_reset_forgets_batches(mock: MockHandle, client: anthropic.Anthropic) -> None:
    batch = create(client, item("a"))

    mock.reset()

    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)
    assert mock.stats()["batches"]["created"] == 0


# --- the async client -----------------------------------------------------------------------------------

def test_the_async_sdk_runs_a_batch_to_its_results(mock: MockHandle) -> None:
    async def scenario() -> dict[str, str]:
        async with mock.async_client() as aclient:
            requests = [item("a"), item("b", "[[mock:status=500]]")]
            batch = await aclient.messages.batches.create(requests=requests)  # type: ignore[arg-type]
            while (await aclient.messages.batches.retrieve(batch.id)).processing_status != "ended":
                await asyncio.sleep(0.05)
            decoder = await aclient.messages.batches.results(batch.id)
            return {line.custom_id: line.result.type async for line in decoder}

    assert asyncio.run(asyncio.wait_for(scenario(), 20)) == {"a": "succeeded", "b": "errored"}


def test_the_async_sdk_iterates_every_page_of_the_list(mock: MockHandle, client: anthropic.Anthropic) -> None:
    ids = five_batches(client)

    async def listed() -> list[str]:
        async with mock.async_client() as aclient:
            return [b.id async for b in aclient.messages.batches.list(limit=2)]

    assert asyncio.run(listed()) == ids[::-1]


def test_the_async_sdk_cancels_and_deletes(mock: MockHandle) -> None:
    mock.configure(batch_delay_ms=SLOW_MS)

    async def scenario() -> tuple[str, str, str]:
        async with mock.async_client() as aclient:
            batch = await aclient.messages.batches.create(requests=[item("a")])  # type: ignore[list-item]
            canceling = await aclient.messages.batches.cancel(batch.id)
            await asyncio.to_thread(mock.advance, 401)
            ended = await aclient.messages.batches.retrieve(batch.id)
            deleted = await aclient.messages.batches.delete(batch.id)
            return canceling.processing_status, ended.processing_status, deleted.type

    assert asyncio.run(scenario()) == ("canceling", "ended", "message_batch_deleted")
