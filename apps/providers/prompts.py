"""Building the Messages request for one block or a pack of blocks, and reading replies.

Caching: the stable prefix (the system prompt, and the part of the template before `{input}`, or the
whole template for a pack) carries `cache_control`; only the per-block text follows the breakpoint.
Packing: blocks are tagged `<block uid="...">`; the reply must be one JSON object mapping every uid
exactly once, else the pack is split (see apps.runs.serving.calls).

Structured outputs (a run with an output schema, apps.providers.structured): every call sends the
schema as `output_config.format`; a pack's is the pack reply schema (`{"items": [{"uid", "output"}]}`,
the same for every pack of the run), and its preamble asks for that shape (STRUCTURED_PACK_PREAMBLE).

Metadata: a block's own fields reach the model only where the template names them,
`{metadata.title}` (dots go into nested objects; a value that is not a string is written as JSON). The
stable prefix then ends at the template's first placeholder, and the rest is rendered per block: alone
it is the user turn's last text; in a pack it is what the block's tags hold.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from apps.providers.errors import FailureKind, ProviderFailure
from apps.providers.structured import checked, document_of, pack_reply_schema, schema_of

INPUT_PLACEHOLDER = "{input}"
PACK_PREAMBLE = (
    "You will receive several blocks, each wrapped in <block uid=\"...\"> tags. Apply the "
    "instructions below to each block independently. Reply with only a JSON object that maps "
    "every block's uid to your answer for that block, as a string, and nothing else.\n\n"
    "Instructions:\n"
)
STRUCTURED_PACK_PREAMBLE = (
    "You will receive several blocks, each wrapped in <block uid=\"...\"> tags. Apply the "
    "instructions below to each block independently. Reply with a JSON object whose \"items\" list "
    "holds one entry per block: {\"uid\": the block's uid, \"output\": your answer for that block}, "
    "every block's uid exactly once.\n\n"
    "Instructions:\n"
)
METADATA_PREFIX = "metadata."
PLACEHOLDER_RE = re.compile(r"\{(input|metadata\.[^{}\s]+)\}")


@dataclass(frozen=True)
class CallSpec:
    """Everything about a run that shapes its calls; built from the Run row (Run.call_spec)."""

    model: str
    system_prompt: str
    prompt_template: str
    max_tokens: int
    temperature: float | None = None
    cache: bool = False
    cache_ttl: str = "5m"
    stream: bool = False
    # The run's output schema as canonical JSON text (apps.providers.structured); "" for free text.
    output_schema: str = ""

    def preamble(self) -> str:
        return STRUCTURED_PACK_PREAMBLE if self.output_schema else PACK_PREAMBLE


@dataclass(frozen=True)
class BlockInput:
    id: int
    uid: str
    input: str
    # The block's metadata; read only for the fields the template names.
    metadata: dict[str, Any] | None = None


def prompt_version(system_prompt: str, prompt_template: str, output_schema: str = "") -> str:
    """The prompt's version stamp: a hash of what shapes the model's instructions (and the output
    schema, for a run that has one)."""
    text = f"{system_prompt}\x00{prompt_template}" + (f"\x00{output_schema}" if output_schema else "")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def metadata_fields(template: str) -> list[str]:
    """The metadata fields a template names (`{metadata.title}` -> `title`), in order, each once."""
    names = [m.group(1)[len(METADATA_PREFIX):] for m in PLACEHOLDER_RE.finditer(template)
             if m.group(1).startswith(METADATA_PREFIX)]
    return list(dict.fromkeys(names))


_MISSING = object()


def metadata_value(metadata: Any, name: str) -> Any:
    """`title`, or `author.name` into nested objects; _MISSING when the block has no such field."""
    value = metadata
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def has_metadata_field(metadata: Any, name: str) -> bool:
    return metadata_value(metadata, name) is not _MISSING


def _render(template: str, block: BlockInput) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "input":
            return block.input
        found = metadata_value(block.metadata, name[len(METADATA_PREFIX):])
        if found is _MISSING:
            return ""
        return found if isinstance(found, str) else json.dumps(found, ensure_ascii=False)

    return PLACEHOLDER_RE.sub(value, template)


def _split_template(template: str) -> tuple[str, str] | None:
    """A template that names metadata: (the stable part, before its first placeholder; the rest,
    rendered per block). None for a template of `{input}` alone."""
    if not metadata_fields(template):
        return None
    first = PLACEHOLDER_RE.search(template)
    assert first is not None
    return template[:first.start()], template[first.start():]


@lru_cache(maxsize=256)
def output_format(schema_text: str, *, packed: bool) -> dict[str, Any]:
    """`output_config` for a call of a structured run (shared: never modify it)."""
    schema = schema_of(schema_text)
    return {"format": {"type": "json_schema", "schema": pack_reply_schema(schema) if packed else schema}}


def _text(text: str, cache_control: dict | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if cache_control:
        block["cache_control"] = cache_control
    return block


def build_params(spec: CallSpec, blocks: list[BlockInput]) -> dict[str, Any]:
    cache_control = {"type": "ephemeral", "ttl": spec.cache_ttl} if spec.cache else None
    split = _split_template(spec.prompt_template)
    if len(blocks) == 1 and split is not None:
        stable, variable = split[0], _render(split[1], blocks[0])
    elif len(blocks) == 1:
        before, _, after = spec.prompt_template.partition(INPUT_PLACEHOLDER)
        stable, variable = before, blocks[0].input + after
    elif split is not None:
        stable = spec.preamble() + split[0]
        variable = "\n".join(f'<block uid="{b.uid}">\n{_render(split[1], b)}\n</block>' for b in blocks)
    else:
        stable = spec.preamble() + spec.prompt_template
        variable = "\n".join(f'<block uid="{b.uid}">\n{b.input}\n</block>' for b in blocks)
    content = [_text(stable, cache_control)] if stable.strip() else []
    content.append(_text(variable))
    params: dict[str, Any] = {
        "model": spec.model,
        "max_tokens": spec.max_tokens,
        "messages": [{"role": "user", "content": content}],
    }
    if spec.system_prompt:
        params["system"] = [_text(spec.system_prompt, cache_control)]
    if spec.output_schema:
        params["output_config"] = output_format(spec.output_schema, packed=len(blocks) > 1)
    if spec.temperature is not None:
        # Removed from SDK signatures since 1.0; only sent when a run asks for it.
        params["extra_body"] = {"temperature": spec.temperature}
    return params


def request_sha256(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def parse_packed_reply(text: str, uids: list[str]) -> dict[str, str]:
    """Map a packed reply back to its blocks; every uid exactly once, or an OUTPUT_PROBLEM."""
    candidate = text.strip()
    if candidate.startswith("```"):
        candidate = candidate.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(candidate)
    except json.JSONDecodeError as exc:
        raise ProviderFailure(
            FailureKind.OUTPUT_PROBLEM, "unparseable_output", f"packed reply is not JSON: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise ProviderFailure(
            FailureKind.OUTPUT_PROBLEM, "unparseable_output", "packed reply is not a JSON object"
        )
    expected = set(uids)
    missing = sorted(expected - data.keys())
    unexpected = sorted(data.keys() - expected)
    if missing or unexpected:
        raise ProviderFailure(
            FailureKind.OUTPUT_PROBLEM,
            "mismapped_output",
            f"packed reply missing uids {missing[:5]}, unexpected uids {unexpected[:5]}",
        )
    return {uid: v if isinstance(v, str) else json.dumps(v) for uid, v in data.items()}


@dataclass(frozen=True)
class Answer:
    """One block's answer in a reply: its text, and for a structured run the document it holds, or
    why it is not one (`failure`: output_invalid, this block's alone)."""

    text: str
    document: Any = None
    failure: ProviderFailure | None = None


def read_reply(spec: CallSpec, uids: list[str], text: str) -> dict[str, Answer]:
    """Each block's answer in a call's reply, by uid. A packed reply that does not map back to its
    blocks is an OUTPUT_PROBLEM (the pack splits); a block's answer that is no document of the run's
    schema carries its own output_invalid failure."""
    if not spec.output_schema:
        if len(uids) == 1:
            return {uids[0]: Answer(text)}
        return {uid: Answer(reply) for uid, reply in parse_packed_reply(text, uids).items()}
    if len(uids) == 1:
        try:
            return {uids[0]: Answer(text, document_of(text, spec.output_schema))}
        except ProviderFailure as failure:
            return {uids[0]: Answer(text, failure=failure)}
    answers = {}
    for uid, document in parse_packed_documents(text, uids).items():
        item = json.dumps(document, ensure_ascii=False)
        try:
            answers[uid] = Answer(item, checked(document, spec.output_schema, raw=item))
        except ProviderFailure as failure:
            answers[uid] = Answer(item, failure=failure)
    return answers


def parse_packed_documents(text: str, uids: list[str]) -> dict[str, Any]:
    """A structured pack's reply, `{"items": [{"uid", "output"}, ...]}`, as uid -> document: every
    uid exactly once, or an OUTPUT_PROBLEM."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProviderFailure(FailureKind.OUTPUT_PROBLEM, "unparseable_output",
                              f"packed reply is not JSON: {exc}") from None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("uid"), str) and "output" in i for i in items
    ):
        raise ProviderFailure(FailureKind.OUTPUT_PROBLEM, "unparseable_output",
                              'packed reply is not {"items": [{"uid": ..., "output": ...}, ...]}')
    documents = {item["uid"]: item["output"] for item in items}
    expected = set(uids)
    missing = sorted(expected - documents.keys())
    unexpected = sorted(documents.keys() - expected)
    repeated = len(items) - len(documents)
    if missing or unexpected or repeated:
        raise ProviderFailure(
            FailureKind.OUTPUT_PROBLEM, "mismapped_output",
            f"packed reply missing uids {missing[:5]}, unexpected uids {unexpected[:5]}, "
            f"{repeated} repeated",
        )
    return documents

