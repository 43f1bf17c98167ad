"""Packed calls: several blocks in one request, answered as one JSON object keyed by uid."""

import json

import anthropic
import pytest

from apps.providers.errors import ProviderFailure
from apps.providers.prompts import BlockInput, CallSpec, build_params, parse_packed_reply
from mock_provider.tests.conftest import MODEL, ask

PREAMBLE = "Answer each block. Reply with only a JSON object mapping uid to answer.\n\n"
BLOCKS = [("b-1", "The first paragraph, about rivers."), ("b-2", "A second one, about hills."),
          ("b-3", "Third: the sea.")]


def pack(blocks: list[tuple[str, str]]) -> str:
    return "\n".join(f'<block uid="{uid}">\n{text}\n</block>' for uid, text in blocks)


def ask_packed(client: anthropic.Anthropic, blocks: list[tuple[str, str]], max_tokens: int = 2_000
               ) -> anthropic.types.Message:
    return client.messages.create(model=MODEL, max_tokens=max_tokens, messages=[{"role": "user", "content": [
        {"type": "text", "text": PREAMBLE}, {"type": "text", "text": pack(blocks)}]}])


def test_a_packed_reply_maps_every_uid_to_that_blocks_own_reply(client: anthropic.Anthropic) -> None:
    reply = json.loads(ask_packed(client, BLOCKS).content[0].text)

    assert list(reply) == ["b-1", "b-2", "b-3"]
    for uid, text in BLOCKS:
        assert reply[uid] == ask(client, text).content[0].text


def test_a_block_gets_the_same_reply_in_any_pack(client: anthropic.Anthropic) -> None:
    together = json.loads(ask_packed(client, BLOCKS).content[0].text)
    apart = json.loads(ask_packed(client, [BLOCKS[2], ("other", "Something else entirely.")]).content[0].text)

    assert apart["b-3"] == together["b-3"]


def test_drop_uid_leaves_that_block_out_of_the_reply(client: anthropic.Anthropic) -> None:
    blocks = [BLOCKS[0], ("b-2", "A second one [[mock:drop_uid]]"), BLOCKS[2]]

    reply = json.loads(ask_packed(client, blocks).content[0].text)

    assert set(reply) == {"b-1", "b-3"}


def test_malformed_makes_the_whole_packed_reply_invalid_json(client: anthropic.Anthropic) -> None:
    blocks = [BLOCKS[0], ("b-2", "A second one [[mock:malformed]]")]
    message = ask_packed(client, blocks)

    assert message.stop_reason == "end_turn"
    with pytest.raises(json.JSONDecodeError):
        json.loads(message.content[0].text)


def test_a_pack_that_does_not_fit_stops_at_max_tokens_with_invalid_json(client: anthropic.Anthropic) -> None:
    message = ask_packed(client, BLOCKS, max_tokens=30)

    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 30
    with pytest.raises(json.JSONDecodeError):
        json.loads(message.content[0].text)


def test_output_tokens_inside_a_block_sets_that_blocks_reply_length(client: anthropic.Anthropic) -> None:
    blocks = [BLOCKS[0], ("b-2", "Long answer please [[mock:output_tokens=100]]")]

    reply = json.loads(ask_packed(client, blocks).content[0].text)

    assert len(reply["b-2"]) == 400
    assert len(reply["b-1"]) < 200


def test_a_fault_in_one_block_fails_the_pack_and_counts_for_that_block(client: anthropic.Anthropic) -> None:
    flaky = ("b-2", "Flaky block [[mock:status=529 times=1]]")
    with pytest.raises(anthropic.OverloadedError):
        ask_packed(client, [BLOCKS[0], flaky])

    # Its one failure is used up, in whatever pack it comes next or alone.
    assert ask(client, flaky[1]).stop_reason == "end_turn"
    assert json.loads(ask_packed(client, [flaky, BLOCKS[2]]).content[0].text).keys() == {"b-2", "b-3"}


def test_the_projects_own_packed_requests_round_trip(client: anthropic.Anthropic) -> None:
    spec = CallSpec(model=MODEL, system_prompt="Be brief.", prompt_template="Summarise:\n{input}",
                    max_tokens=2_000)
    blocks = [BlockInput(id=i, uid=uid, input=text) for i, (uid, text) in enumerate(BLOCKS)]

    packed = client.messages.create(**build_params(spec, blocks))
    mapping = parse_packed_reply(packed.content[0].text, [b.uid for b in blocks])

    for block in blocks:
        alone = client.messages.create(**build_params(spec, [block]))
        assert mapping[block.uid] == alone.content[0].text


def test_the_projects_parser_rejects_a_reply_missing_a_uid(client: anthropic.Anthropic) -> None:
    spec = CallSpec(model=MODEL, system_prompt="", prompt_template="{input}", max_tokens=2_000)
    blocks = [BlockInput(id=1, uid="u1", input="one"),
              BlockInput(id=2, uid="u2", input="two [[mock:drop_uid]]")]

    packed = client.messages.create(**build_params(spec, blocks))

    with pytest.raises(ProviderFailure) as caught:
        parse_packed_reply(packed.content[0].text, ["u1", "u2"])
    assert caught.value.code == "mismapped_output"
