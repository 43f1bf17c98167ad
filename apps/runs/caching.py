"""Whether a run's prompt caching can work at all: the cacheable prefix's size against the model's
minimum, known before any call is made.

The provider caches a prefix only from `min_cache_tokens` (catalog) on, and a shorter one is skipped
silently: both cache usage fields stay 0, no error. So a run with caching on and a short prefix
would pay full input prices while looking configured for savings. `prefix_warnings` says so at
create time, stored on the run (`Run.warnings`) and shown by the API, the admin and `submit`.

Warm-up is per pass: a run's first call goes alone and the rest fan out once it has answered (so the
prefix is written once, not by every call at once). The hash of the prefix it wrote is kept on the run
(`prefix_sha256`, `Run.cache_prefix_sha256`); a reseed whose prefix differs (another system prompt,
template or model), or that comes after the cache expired, warms again (`needs_warm_up`).

The prefix is taken from the request the engine really sends (apps.providers.prompts.build_params):
every text block up to the last `cache_control` breakpoint (the system prompt, then the stable part of
the user turn: the template before `{input}`, or for a pack the pack preamble and the whole
template). Its size is an *estimate*, 4 characters per token per text block (apps.runs.estimates'
typical estimate, and exactly the bundled mock's rule, mock_provider/tokens.py); a real tokenizer
counts English about the same, code and other scripts higher.
"""

import hashlib
import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from apps.providers.catalog import get_model
from apps.providers.prompts import INPUT_PLACEHOLDER, BlockInput, CallSpec, build_params
from apps.providers.structured import schema_json
from apps.runs.estimates import schema_text, tokens_typical

CACHE_PREFIX_TOO_SHORT = "cache_prefix_too_short"
# Placeholders standing for the blocks: only the text around them, the prefix, is counted.
_ONE_BLOCK = [BlockInput(id=0, uid="u0", input="")]
_TWO_BLOCKS = [BlockInput(id=0, uid="u0", input=""), BlockInput(id=1, uid="u1", input="")]


def _text_blocks(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's text blocks in prefix order (system, then the messages)."""
    blocks = [b for b in params.get("system") or [] if b.get("type") == "text"]
    for message in params["messages"]:
        content = message["content"]
        blocks += [b for b in content if isinstance(b, dict) and b.get("type") == "text"]
    return blocks


def cacheable_prefix_tokens(spec: CallSpec, *, packed: bool) -> int:
    """Estimated tokens of what a call of this run would cache if caching were on: the text blocks up
    to its last breakpoint, 4 characters per token each. 0 when nothing is cacheable (no system prompt
    and nothing before `{input}`)."""
    params = build_params(replace(spec, cache=True), _TWO_BLOCKS if packed else _ONE_BLOCK)
    blocks = _text_blocks(params)
    last = max((i for i, b in enumerate(blocks) if b.get("cache_control")), default=-1)
    if last < 0:
        return 0
    # A structured run's schema is part of the system prompt the model reads, so of the prefix.
    schema = tokens_typical(schema_text(spec, packed=packed)) if spec.output_schema else 0
    return schema + sum(tokens_typical(b["text"]) for b in blocks[: last + 1])


CACHE_TTLS = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1)}


def prefix_sha256(spec: CallSpec, *, packed: bool) -> str:
    """What a run's calls cache, as one hash: the model (each model has its own cache), the output
    schema and the text blocks up to the last breakpoint. Two passes with the same hash read the same
    cache entry; a pass with another one must write its own first."""
    params = build_params(replace(spec, cache=True), _TWO_BLOCKS if packed else _ONE_BLOCK)
    blocks = _text_blocks(params)
    last = max((i for i, b in enumerate(blocks) if b.get("cache_control")), default=-1)
    prefix = [spec.model, schema_text(spec, packed=packed), *(b["text"] for b in blocks[: last + 1])]
    return hashlib.sha256(json.dumps(prefix).encode()).hexdigest()


def needs_warm_up(spec: CallSpec, *, packed: bool, warmed_sha256: str, last_call_at: datetime | None,
                  now: datetime) -> bool:
    """Whether a new pass of a caching run must warm its cache again (one call alone, then fan out):
    its prefix is not the one warmed, or the cache entry has expired since the run's last call (every
    read refreshes it for its TTL)."""
    if not spec.cache:
        return False
    if prefix_sha256(spec, packed=packed) != warmed_sha256:
        return True
    return last_call_at is None or now - last_call_at >= CACHE_TTLS.get(spec.cache_ttl, CACHE_TTLS["5m"])


def prefix_warnings(spec: CallSpec, *, pack_size: int, blocks: int) -> list[dict[str, Any]]:
    """The create-time warnings about caching: one `cache_prefix_too_short` when caching is on and
    the prefix is estimated under the model's minimum, else none.

    A packed run is judged by its packed calls' prefix (the pack preamble included), which most of
    its calls send; a run of one block never packs."""
    info = get_model(spec.model)
    if not spec.cache or info is None:
        return []
    packed = pack_size > 1 and blocks > 1
    tokens = cacheable_prefix_tokens(spec, packed=packed)
    minimum = info.min_cache_tokens
    if tokens >= minimum:
        return []
    missing = minimum - tokens
    what = ("the system prompt, the pack instructions and the template" if packed
            else "the system prompt and the template before {input}")
    return [{
        "code": CACHE_PREFIX_TOO_SHORT,
        "message": (f"caching is on but the cacheable prefix is about {tokens:,} tokens ({what}); "
                    f"{spec.model} caches from {minimum:,}: about {missing:,} tokens missing, so "
                    "nothing will be cached (estimated at 4 characters per token)"),
        "prefix_tokens": tokens,
        "min_cache_tokens": minimum,
        "missing_tokens": missing,
    }]


def settings_warnings(*, blocks: int, model: str, system_prompt: str = "",
                      prompt_template: str = INPUT_PLACEHOLDER, options: dict[str, Any] | None = None,
                      output_schema: dict[str, Any] | None = None, **ignored: Any) -> list[dict[str, Any]]:
    """prefix_warnings for a run's settings as a create takes them, before the run exists (the
    preflight estimate)."""
    options = options or {}
    spec = CallSpec(model=model, system_prompt=system_prompt, prompt_template=prompt_template,
                    max_tokens=1, cache=bool(options.get("cache")), cache_ttl=options.get("cache_ttl", "5m"),
                    output_schema=schema_json(output_schema) if output_schema else "")
    return prefix_warnings(spec, pack_size=int(options.get("pack_size", 1)), blocks=blocks)
