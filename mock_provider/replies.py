"""Deterministic replies, packed replies and their truncation.

A reply is a function of one text only, so runs can be compared block by block:
- an ordinary call answers its last user message's last text block;
- a packed call (the last user message holds `<block uid="UID">\\n...\\n</block>` elements) answers
  with one JSON object `{"UID": reply, ...}` where each reply is that block's text answered alone.
  So a block gets the same reply packed or unpacked whenever the unpacked call's last text block is
  exactly the block's text (the project's prompts with `{input}` at the end of the template).
Directives are removed and whitespace collapsed before the text is used.

The reply is "Reply <8 hex of sha256>: <first words of the text>" followed by filler words (a fixed
word sequence entered at an offset chosen by the same hash), up to a target length: by default 24
tokens plus one per 8 input tokens, at most 200, cut at a word boundary; `[[mock:output_tokens=N]]`
makes it exactly N.
"""

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from mock_provider.faults import BLOCK_RE, Directive, strip_directives
from mock_provider.prompt import ParsedRequest
from mock_provider.structured import document_text
from mock_provider.tokens import chars_for_tokens, count_text

FILLER = (
    "amber", "basalt", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper",
    "kelp", "lumen", "meadow", "nectar", "onyx", "prairie", "quartz", "river", "saffron", "tundra",
    "umber", "violet", "willow", "xenon", "yarrow", "zephyr",
)
DEFAULT_BASE_TOKENS = 24
DEFAULT_MAX_TOKENS = 200
HEAD_WORDS = 8
HEAD_CHARS = 60
# Filler is read from one fixed sequence of words at a hash-chosen offset: as deterministic as a seeded
# generator per reply, and several times cheaper (the mock must never be a benchmark's bottleneck).
_CORPUS = " ".join(random.Random(0).choice(FILLER) for _ in range(8_192))
# What a disobedient model might say around its JSON; with the closing brace gone it never parses.
MALFORMED_PREFIX = "Sure! Here are the answers for each block:\n"
# What a model that declines says (stop_reason "refusal").
REFUSAL_TEXT = "I can't help with that request."


@dataclass(frozen=True)
class Reply:
    text: str
    output_tokens: int
    stop_reason: str
    stop_sequence: str | None = None


@dataclass(frozen=True)
class ReplyShape:
    """What the directives ask of this reply (already decided, `times` counted)."""

    forced_max_tokens: bool = False
    output_tokens: int | None = None
    block_output_tokens: dict[str, int] = field(default_factory=dict)
    dropped_uids: frozenset[str] = frozenset()
    malformed: bool = False
    extra_latency_ms: float = 0.0
    refused: bool = False


def shape_reply(directives: list[Directive], take: Callable[[Directive], bool]) -> ReplyShape:
    forced = False
    output: int | None = None
    per_block: dict[str, int] = {}
    dropped: set[str] = set()
    malformed = refused = False
    latency = 0.0
    for d in directives:
        if d.action == "max_tokens" and take(d):
            forced = True
        elif d.action == "output_tokens" and take(d):
            if d.uid is None:
                output = d.value
            else:
                per_block[d.uid] = d.value or 0
        elif d.action == "latency_ms" and take(d):
            latency += d.value or 0
        elif d.action == "drop_uid" and d.uid is not None and take(d):
            dropped.add(d.uid)
        elif d.action == "malformed" and take(d):
            malformed = True
        elif d.action == "refusal" and take(d):
            refused = True
    return ReplyShape(forced, output, per_block, frozenset(dropped), malformed, latency, refused)


def reply_for(text: str, target_tokens: int | None = None) -> str:
    clean = _clean(text)
    digest = hashlib.sha256(clean.encode()).hexdigest()
    words = clean.split(" ") if clean else []
    head = " ".join(words[:HEAD_WORDS])[:HEAD_CHARS].rstrip()
    sentence = f"Reply {digest[:8]}: {head}" if head else f"Reply {digest[:8]}"
    target = target_tokens if target_tokens is not None else min(
        DEFAULT_BASE_TOKENS + count_text(clean) // 8, DEFAULT_MAX_TOKENS)
    limit = chars_for_tokens(target)
    text = sentence
    if limit > len(sentence):
        text += " " + _filler(int(digest[8:16], 16), limit - len(sentence))
    if target_tokens is not None:
        # Asked for a length: give exactly that many tokens (tests rely on the number).
        cut = text[:limit]
        return cut[:-1] + "." if cut.endswith(" ") else cut
    if len(text) > limit:
        # Cut at a word boundary when there is one, so default replies read as words.
        cut = text[:limit]
        text = cut[: cut.rindex(" ")] if text[limit] != " " and " " in cut else cut
    return text.rstrip()


def _filler(seed: int, length: int) -> str:
    position = _CORPUS.index(" ", seed % (len(_CORPUS) // 2)) + 1  # start on a word
    parts: list[str] = []
    while length > 0:  # wrap around for very long replies
        chunk = _CORPUS[position:position + length]
        parts.append(chunk)
        length -= len(chunk)
        position = 0
    return "".join(parts)


def packed_blocks(request: ParsedRequest) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for text in request.last_user_texts() for m in BLOCK_RE.finditer(text)]


def _clean(text: str) -> str:
    return " ".join(strip_directives(text).split())


def generate(request: ParsedRequest, shape: ReplyShape) -> Reply:
    if request.max_tokens == 0:
        # Used to warm the cache: nothing is generated.
        return Reply("", 0, "max_tokens")
    if shape.refused:
        return Reply(REFUSAL_TEXT, count_text(REFUSAL_TEXT), "refusal")
    blocks = packed_blocks(request)
    if request.output_schema is not None:
        if blocks:
            pairs = [(uid, _clean(inner)) for uid, inner in blocks if uid not in shape.dropped_uids]
            text = document_text(request.output_schema, "", pairs)
        else:
            texts = request.last_user_texts()
            text = document_text(request.output_schema, _clean(texts[-1] if texts else ""))
        if shape.malformed:
            text = MALFORMED_PREFIX + text[:-1]
    elif blocks:
        mapping = {
            uid: reply_for(inner, shape.block_output_tokens.get(uid, shape.output_tokens))
            for uid, inner in blocks if uid not in shape.dropped_uids
        }
        text = json.dumps(mapping, ensure_ascii=False)
        if shape.malformed:
            text = MALFORMED_PREFIX + text[:-1]
    else:
        texts = request.last_user_texts()
        text = reply_for(texts[-1] if texts else "", shape.output_tokens)

    stop_reason, stop_sequence = "end_turn", None
    hits = [(text.find(s), s) for s in request.stop_sequences if s in text]
    if hits:
        position, stop_sequence = min(hits)
        text, stop_reason = text[:position], "stop_sequence"

    limit = request.max_tokens
    if shape.forced_max_tokens:
        limit = min(limit, max(1, count_text(text) // 2))
    if shape.forced_max_tokens or count_text(text) > limit:
        text = text[: chars_for_tokens(limit)]
        stop_reason, stop_sequence = "max_tokens", None
    return Reply(text, max(1, count_text(text)), stop_reason, stop_sequence)
