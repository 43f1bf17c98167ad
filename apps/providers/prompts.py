"""Building the Messages request for one block or a pack of blocks, and reading packed replies.

Caching: the stable prefix (the system prompt, and the part of the template before `{input}`, or the
whole template for a pack) carries `cache_control`; only the per-block text follows the breakpoint.
Packing: blocks are tagged `<block uid="...">`; the reply must be one JSON object mapping every uid
exactly once, else the pack is split (see apps.runs.serving.calls).
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from apps.providers.errors import FailureKind, ProviderFailure

INPUT_PLACEHOLDER = "{input}"
PACK_PREAMBLE = (
    "You will receive several blocks, each wrapped in <block uid=\"...\"> tags. Apply the "
    "instructions below to each block independently. Reply with only a JSON object that maps "
    "every block's uid to your answer for that block, as a string, and nothing else.\n\n"
    "Instructions:\n"
)


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


@dataclass(frozen=True)
class BlockInput:
    id: int
    uid: str
    input: str


def prompt_version(system_prompt: str, prompt_template: str) -> str:
    """The prompt's version stamp: a hash of what shapes the model's instructions."""
    digest = hashlib.sha256(f"{system_prompt}\x00{prompt_template}".encode()).hexdigest()
    return digest[:16]


def _text(text: str, cache_control: dict | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if cache_control:
        block["cache_control"] = cache_control
    return block


def build_params(spec: CallSpec, blocks: list[BlockInput]) -> dict[str, Any]:
    cache_control = {"type": "ephemeral", "ttl": spec.cache_ttl} if spec.cache else None
    if len(blocks) == 1:
        before, _, after = spec.prompt_template.partition(INPUT_PLACEHOLDER)
        stable, variable = before, blocks[0].input + after
    else:
        stable = PACK_PREAMBLE + spec.prompt_template
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
