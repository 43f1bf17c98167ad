"""Deterministic token counting: one token per 4 characters (rounded up) of each content block.

Real tokenizers average roughly 4 characters of English per token; what matters for the mock is that the
rule is simple, documented, additive over blocks (so cache prefixes, `count_tokens` and `usage` agree
exactly) and the same in every process.

- a text block (system or message) counts ceil(len(text) / 4) characters, len in code points;
- any other block (image, tool_use, tool_result, document...) and each tool definition counts its
  compact, key-sorted JSON the same way, without its `cache_control` (a breakpoint costs nothing);
- a string `content` or `system` counts as one text block; there is no per-message overhead;
- output: the reply text counted the same way, at least 1 for a non-empty reply.
"""

import json
from typing import Any

CHARS_PER_TOKEN = 4


def count_text(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def canonical_json(block: dict[str, Any]) -> str:
    """The form a non-text block is counted and hashed in: stable across key order and spacing."""
    stripped = {k: v for k, v in block.items() if k != "cache_control"}
    return json.dumps(stripped, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chars_for_tokens(tokens: int) -> int:
    """How many characters make exactly `tokens` tokens under this rule (used to cut replies)."""
    return max(0, tokens) * CHARS_PER_TOKEN
