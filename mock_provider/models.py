"""The mock's model catalog: what `GET /v1/models` lists and what `/v1/messages` accepts.

This is the *provider's* catalog, deliberately separate from the project's own registry
(apps/providers/catalog.json): the mock plays the API, which knows models the project may not have
priced yet, and the project must cope with that. Ids follow the SDK's `types/model.py` (anthropic
2.12.0); minimum cacheable lengths follow the prompt-caching docs. Creation dates, context sizes and
output caps of the newest models are not published in our sources: they are plausible placeholders,
ordered like the SDK's list (newest first). The output caps of the models the project's catalog
knows follow the models' documentation pages and agree with the catalog's `max_output_tokens`
(tests/providers/test_catalog.py checks it).
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MockModel:
    id: str  # the id GET /v1/models lists (dated where the API has a dated id)
    display_name: str
    created_at: str  # RFC 3339
    line: str | None
    min_cache_tokens: int
    max_output_tokens: int
    max_input_tokens: int = 200_000
    aliases: tuple[str, ...] = ()
    lifecycle: str = "active"
    deprecated_at: str | None = None
    retires_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "model",
            "id": self.id,
            "display_name": self.display_name,
            "created_at": self.created_at,
            "lifecycle": self.lifecycle,
            "line": self.line,
            "deprecated_at": self.deprecated_at,
            "retires_at": self.retires_at,
            "max_input_tokens": self.max_input_tokens,
            "max_tokens": self.max_output_tokens,
        }


MODELS: tuple[MockModel, ...] = (
    MockModel("claude-fable-5-2", "Claude Fable 5.2", "2026-10-28T00:00:00Z", "fable", 512, 128_000),
    MockModel("claude-mythos-5-2", "Claude Mythos 5.2", "2026-10-28T00:00:00Z", "mythos", 512, 128_000),
    MockModel("claude-haiku-5-5", "Claude Haiku 5.5", "2026-10-21T00:00:00Z", "haiku", 4096, 64_000),
    MockModel("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-10-21T00:00:00Z", "sonnet", 1024, 128_000),
    MockModel("claude-fable-5-1", "Claude Fable 5.1", "2026-10-01T00:00:00Z", "fable", 512, 128_000),
    MockModel("claude-opus-5-5", "Claude Opus 5.5", "2026-10-01T00:00:00Z", "opus", 1024, 128_000),
    MockModel("claude-mythos-5-1", "Claude Mythos 5.1", "2026-09-15T00:00:00Z", "mythos", 512, 128_000),
    MockModel("claude-sonnet-5", "Claude Sonnet 5", "2026-08-01T00:00:00Z", "sonnet", 1024, 128_000),
    MockModel("claude-fable-5", "Claude Fable 5", "2026-07-15T00:00:00Z", "fable", 512, 128_000),
    MockModel("claude-mythos-5", "Claude Mythos 5", "2026-07-15T00:00:00Z", "mythos", 512, 128_000),
    MockModel("claude-opus-5", "Claude Opus 5", "2026-07-01T00:00:00Z", "opus", 1024, 128_000),
    MockModel("claude-opus-4-8", "Claude Opus 4.8", "2026-06-01T00:00:00Z", "opus", 1024, 128_000),
    MockModel("claude-opus-4-7", "Claude Opus 4.7", "2026-04-15T00:00:00Z", "opus", 2048, 128_000),
    MockModel("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z", "opus", 4096, 128_000),
    MockModel("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-01T00:00:00Z", "sonnet", 1024, 128_000),
    MockModel("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-01T00:00:00Z", "opus", 4096, 64_000,
              aliases=("claude-opus-4-5",)),
    MockModel("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z", "haiku", 4096, 64_000,
              aliases=("claude-haiku-4-5",)),
    MockModel("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z", "sonnet", 1024,
              64_000, aliases=("claude-sonnet-4-5",), lifecycle="deprecated",
              deprecated_at="2026-05-30T00:00:00Z", retires_at="2026-11-30T00:00:00Z"),
)

_BY_NAME: dict[str, MockModel] = {name: m for m in MODELS for name in (m.id, *m.aliases)}


def find_model(name: str) -> MockModel | None:
    """A model by its listed id or an alias (`claude-haiku-4-5` -> the dated entry)."""
    return _BY_NAME.get(name)
