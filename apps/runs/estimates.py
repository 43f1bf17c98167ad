"""Estimates made before money is spent: the input tokens a lane reserves for a call, the worst-case
cost a budget reserves for a block, and the preflight estimate of a whole run.

Token counts are estimated from UTF-8 bytes, never from a tokenizer we do not have:
- the *high* estimate (reservations) takes 3 bytes per token. English runs at about 4 characters per
  token, so it over-reserves by about a third; the lane gives the difference back when the call's
  usage is known, so pacing converges on the real limit, and a budget ends a little short rather than
  over. Text that packs more tokens per byte than that is rare (the tail of a budget is still checked
  against what was really spent);
- the *typical* estimate (the preflight's low end) takes 4 characters per token.
"""

import json
import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from apps.providers.catalog import PER_MILLION, ModelInfo, get_model
from apps.providers.prompts import PLACEHOLDER_RE, CallSpec, output_format
from apps.providers.usage import BATCH_DISCOUNT

BYTES_PER_TOKEN_HIGH = 3.0
CHARS_PER_TOKEN_TYPICAL = 4.0
# Role markers, block tags and the like around the texts of one call.
CALL_OVERHEAD_TOKENS = 16
PACK_TAG_TOKENS = 12
MONEY = Decimal("0.00000001")


def tokens_high(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN_HIGH)


def tokens_typical(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN_TYPICAL)


def schema_text(spec: CallSpec, *, packed: bool) -> str:
    """The output schema a call sends (a structured run's), as the model reads it: part of its system
    prompt, and so of the cacheable prefix. "" for a free-text run."""
    if not spec.output_schema:
        return ""
    return json.dumps(output_format(spec.output_schema, packed=packed)["format"]["schema"])


def prefix_text(spec: CallSpec, *, packed: bool) -> str:
    """What every call of the run sends besides the blocks' own text (the cacheable prefix): the output
    schema, the system prompt, the pack instructions and the template without its placeholders."""
    template = PLACEHOLDER_RE.sub("", spec.prompt_template)
    preamble = spec.preamble() if packed else ""
    return schema_text(spec, packed=packed) + spec.system_prompt + preamble + template


def call_input_tokens(spec: CallSpec, inputs: list[str]) -> int:
    """A lane's input-token reservation for one call of these blocks (high estimate)."""
    packed = len(inputs) > 1
    tags = PACK_TAG_TOKENS * len(inputs) if packed else 0
    return (CALL_OVERHEAD_TOKENS + tags + tokens_high(prefix_text(spec, packed=packed))
            + sum(tokens_high(text) for text in inputs))


def _prices(model: str) -> ModelInfo:
    info = get_model(model)
    if info is None:
        raise ValueError(f"unknown model {model!r}")
    return info


@dataclass(frozen=True)
class BlockReservation:
    """A block's worst case, as `fixed + per_byte * bytes(input)`: the claim computes it in SQL for
    every block it takes, from the length of the block's input."""

    fixed_usd: Decimal
    per_byte_usd: Decimal

    def for_input(self, text: str) -> Decimal:
        return (self.fixed_usd + self.per_byte_usd * len(text.encode("utf-8"))).quantize(MONEY)


def block_reservation(spec: CallSpec, *, pack_size: int, batch: bool = False) -> BlockReservation:
    """The most one block's call can cost: the whole prefix at the cache-write price (if caching is
    on; a pack's prefix charged to each of its blocks), its input at the input price, and the full
    `max_tokens` of output at the output price; half of all that in a Message Batch."""
    info = _prices(spec.model)
    prefix_price = info.input
    if spec.cache:
        prefix_price = info.cache_write_1h if spec.cache_ttl == "1h" else info.cache_write_5m
    packed = pack_size > 1
    prefix_tokens = (CALL_OVERHEAD_TOKENS + (PACK_TAG_TOKENS if packed else 0)
                     + tokens_high(prefix_text(spec, packed=packed)))
    share = BATCH_DISCOUNT if batch else Decimal(1)
    fixed = (prefix_tokens * prefix_price + spec.max_tokens * info.output) * share / PER_MILLION
    per_byte = info.input * share / Decimal(BYTES_PER_TOKEN_HIGH) / PER_MILLION
    return BlockReservation(fixed_usd=fixed, per_byte_usd=per_byte)


def call_reservation(spec: CallSpec, inputs: list[str], *, batch: bool = False) -> Decimal:
    """The most one call of these blocks can cost (what a split's call reserves before it starts): its
    prefix at the cache-write price if caching is on, the blocks' texts at the input price (high
    estimate, as the lane's `call_input_tokens`), and `max_tokens` of output."""
    info = _prices(spec.model)
    prefix_price = info.input
    if spec.cache:
        prefix_price = info.cache_write_1h if spec.cache_ttl == "1h" else info.cache_write_5m
    packed = len(inputs) > 1
    prefix_tokens = (CALL_OVERHEAD_TOKENS + (PACK_TAG_TOKENS * len(inputs) if packed else 0)
                     + tokens_high(prefix_text(spec, packed=packed)))
    own_tokens = sum(tokens_high(text) for text in inputs)
    share = BATCH_DISCOUNT if batch else Decimal(1)
    cost = (prefix_tokens * prefix_price + own_tokens * info.input + spec.max_tokens * info.output)
    return (cost * share / PER_MILLION).quantize(MONEY, rounding=ROUND_CEILING)


@dataclass(frozen=True)
class RunEstimate:
    """Before a run starts: what it will take, as a range. Output is known only by its bound."""

    blocks: int
    calls: int
    input_tokens_low: int
    input_tokens_high: int
    output_tokens_max: int
    # Input only, at typical counts, with every cacheable prefix read from the cache after the first.
    cost_usd_low: Decimal
    # Everything at its worst: high counts, no cache hit, every call writing its full max_tokens.
    cost_usd_high: Decimal

    def as_dict(self) -> dict[str, object]:
        return {
            "blocks": self.blocks, "calls": self.calls,
            "input_tokens": {"low": self.input_tokens_low, "high": self.input_tokens_high},
            "output_tokens": {"max": self.output_tokens_max},
            "cost_usd": {"low": str(self.cost_usd_low), "high": str(self.cost_usd_high)},
        }


def run_estimate(spec: CallSpec, inputs: list[str] | None = None, *, pack_size: int = 1,
                 blocks: int = 0, input_chars: int = 0, input_bytes: int = 0,
                 batch: bool = False) -> RunEstimate:
    """From the blocks' texts, or from their count and total size (what a stored run keeps); at
    batch prices for a batch-mode run."""
    if inputs is not None:
        blocks = len(inputs)
        input_chars = sum(len(t) for t in inputs)
        input_bytes = sum(len(t.encode("utf-8")) for t in inputs)
    info = _prices(spec.model)
    pack_size = max(1, pack_size)
    calls = math.ceil(blocks / pack_size) if blocks else 0
    packed = pack_size > 1
    prefix = prefix_text(spec, packed=packed)
    overhead = CALL_OVERHEAD_TOKENS + (PACK_TAG_TOKENS * pack_size if packed else 0)
    prefix_low, prefix_high = tokens_typical(prefix), tokens_high(prefix)
    own_low = math.ceil(input_chars / CHARS_PER_TOKEN_TYPICAL)
    own_high = math.ceil(input_bytes / BYTES_PER_TOKEN_HIGH)
    input_low = calls * (overhead + prefix_low) + own_low
    input_high = calls * (overhead + prefix_high) + own_high
    output_max = calls * spec.max_tokens
    if spec.cache and calls:
        write = info.cache_write_1h if spec.cache_ttl == "1h" else info.cache_write_5m
        prefix_cost_low = prefix_low * (write + (calls - 1) * info.cache_read)
        prefix_cost_high = calls * prefix_high * write
    else:
        prefix_cost_low = calls * prefix_low * info.input
        prefix_cost_high = calls * prefix_high * info.input
    low = (prefix_cost_low + (input_low - calls * prefix_low) * info.input) / PER_MILLION
    high = (prefix_cost_high + (input_high - calls * prefix_high) * info.input
            + output_max * info.output) / PER_MILLION
    if batch:
        low, high = low * BATCH_DISCOUNT, high * BATCH_DISCOUNT
    return RunEstimate(blocks=blocks, calls=calls, input_tokens_low=input_low,
                       input_tokens_high=input_high, output_tokens_max=output_max,
                       cost_usd_low=low.quantize(MONEY), cost_usd_high=high.quantize(MONEY))
