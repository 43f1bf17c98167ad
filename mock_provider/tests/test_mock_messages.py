import anthropic
import httpx2
import pytest

from mock_provider.testing import MockHandle
from mock_provider.tests.conftest import MODEL, ask


def test_it_answers_with_a_parsed_message_and_usage(client: anthropic.Anthropic) -> None:
    message = ask(client, "Translate the weather report into French.")

    assert message.id.startswith("msg_")
    assert message.type == "message" and message.role == "assistant"
    assert message.model == MODEL
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith("Reply ")
    assert message.usage.input_tokens == 11  # 42 characters, 4 per token, rounded up
    assert message.usage.output_tokens > 0
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.service_tier == "standard"


def test_the_same_request_gets_the_same_text(client: anthropic.Anthropic) -> None:
    first = ask(client, "A block of text to process.")
    second = ask(client, "A block of text to process.")

    assert first.content[0].text == second.content[0].text
    assert first.id != second.id


def test_different_inputs_get_different_replies_that_quote_them(client: anthropic.Anthropic) -> None:
    one = ask(client, "Alpha paragraph about rivers").content[0].text
    two = ask(client, "Beta paragraph about mountains").content[0].text

    assert one != two
    assert "Alpha paragraph about rivers" in one
    assert "Beta paragraph about mountains" in two


def test_the_reply_depends_on_the_last_text_block_only(client: anthropic.Anthropic) -> None:
    alone = ask(client, "The block itself.").content[0].text
    with_prefix = client.messages.create(
        model=MODEL, max_tokens=1000, system="Some system prompt.",
        messages=[{"role": "user", "content": [{"type": "text", "text": "Instructions first."},
                                               {"type": "text", "text": "The block itself."}]}],
    ).content[0].text

    assert with_prefix == alone


def test_a_stream_ends_in_the_same_message_as_a_plain_call(client: anthropic.Anthropic) -> None:
    plain = ask(client, "Stream me, please.")
    with client.messages.stream(model=MODEL, max_tokens=1000,
                                messages=[{"role": "user", "content": "Stream me, please."}]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()

    assert "".join(pieces) == plain.content[0].text
    assert final.content[0].text == plain.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == plain.usage.input_tokens
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert stream.request_id and stream.request_id.startswith("req_")


def test_a_stream_sends_the_documented_event_sequence(client: anthropic.Anthropic) -> None:
    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=1000, stream=True,
        messages=[{"role": "user", "content": "Name the events."}],
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(anthropic.Stream.raw_events(response.http_response))

    names = [e.event for e in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert set(names[3:-3]) == {"content_block_delta"} and len(names[3:-3]) >= 2
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert all(e.json()["type"] == e.event for e in events)
    start = events[0].json()["message"]
    assert start["stop_reason"] is None and start["content"] == []


def test_message_delta_carries_cumulative_usage(client: anthropic.Anthropic) -> None:
    plain = ask(client, "Count my tokens.")
    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=1000, stream=True,
        messages=[{"role": "user", "content": "Count my tokens."}],
    ) as response:
        events = list(anthropic.Stream.raw_events(response.http_response))

    delta = next(e.json() for e in events if e.event == "message_delta")
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == plain.usage.output_tokens
    assert delta["usage"]["input_tokens"] == plain.usage.input_tokens


def test_a_reply_longer_than_max_tokens_stops_at_max_tokens(client: anthropic.Anthropic) -> None:
    full = ask(client, "Something to answer at length.")
    cut = ask(client, "Something to answer at length.", max_tokens=5)

    assert cut.stop_reason == "max_tokens"
    assert cut.usage.output_tokens == 5
    assert full.content[0].text.startswith(cut.content[0].text)
    assert len(cut.content[0].text) == 20


def test_max_tokens_zero_generates_nothing(client: anthropic.Anthropic) -> None:
    message = ask(client, "Just warm the cache.", max_tokens=0)

    assert message.content == []
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 0


def test_max_tokens_zero_streams_no_content_block(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=0,
                                messages=[{"role": "user", "content": "warm"}]) as stream:
        final = stream.get_final_message()

    assert final.content == [] and final.stop_reason == "max_tokens"


def test_a_stop_sequence_in_the_reply_ends_it_there(client: anthropic.Anthropic) -> None:
    message = ask(client, "Stop early.", stop_sequences=[":"])

    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == ":"
    assert message.content[0].text.startswith("Reply ") and ":" not in message.content[0].text


def test_count_tokens_applies_four_characters_per_token(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(
        model=MODEL, system="12345678", messages=[{"role": "user", "content": "abcdefghi"}])

    assert counted.input_tokens == 2 + 3


def test_count_tokens_agrees_with_the_usage_of_the_same_request(client: anthropic.Anthropic) -> None:
    params = {
        "model": MODEL,
        "system": [{"type": "text", "text": "Policy text. " * 50}],
        "messages": [{"role": "user", "content": "First question?"},
                     {"role": "assistant", "content": "First answer."},
                     {"role": "user", "content": [{"type": "text", "text": "Second question?"}]}],
    }
    counted = client.messages.count_tokens(**params)  # type: ignore[arg-type]
    usage = client.messages.create(max_tokens=100, **params).usage  # type: ignore[arg-type]

    total = usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
    assert counted.input_tokens == total


def test_every_response_carries_a_request_id_header(mock: MockHandle, client: anthropic.Anthropic) -> None:
    ok = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    models = client.models.with_raw_response.list()
    with pytest.raises(anthropic.OverloadedError) as failed:
        ask(client, "[[mock:status=529]]")

    for raw in (ok, models):
        assert raw.headers["request-id"].startswith("req_")
    assert ok.parse()._request_id == ok.headers["request-id"]
    assert failed.value.response.headers["request-id"] == failed.value.request_id
    assert failed.value.body["request_id"] == failed.value.request_id  # type: ignore[index]
    assert len(mock.requests()) == 2


def test_it_lists_the_models_of_the_catalog_newest_first(client: anthropic.Anthropic) -> None:
    ids = [m.id for m in client.models.list(limit=5)]  # auto-pagination walks every page

    for expected in ("claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929", "claude-sonnet-4-6",
                     "claude-opus-4-5-20251101", "claude-opus-4-6", "claude-opus-4-7", "claude-opus-4-8",
                     "claude-sonnet-5", "claude-opus-5"):
        assert expected in ids
    assert len(ids) == len(set(ids))
    assert ids.index("claude-opus-5") < ids.index("claude-haiku-4-5-20251001")


def test_a_model_can_be_retrieved_by_alias(client: anthropic.Anthropic) -> None:
    model = client.models.retrieve("claude-haiku-4-5")

    assert model.id == "claude-haiku-4-5-20251001"
    assert model.display_name == "Claude Haiku 4.5"
    assert model.lifecycle == "active"


@pytest.mark.filterwarnings("ignore:The model 'claude-sonnet-4-5:DeprecationWarning")
def test_every_catalog_model_answers_messages(client: anthropic.Anthropic) -> None:
    for model in client.models.list(limit=100):
        assert ask(client, "hello", model=model.id, max_tokens=5).model == model.id


def test_unknown_routes_get_a_not_found_error_body(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.get("/v1/nothing-here", cast_to=httpx2.Response)

    assert caught.value.body == {
        "type": "error", "error": {"type": "not_found_error", "message": "Not Found"},
        "request_id": caught.value.request_id,
    }
