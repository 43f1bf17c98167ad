"""The one registry of models: ids, prices, cache minimums, output limits and retirement dates, loaded
from data.

Every code path (submission, validation, pricing, the demo) asks this module; nothing else hard-codes a
model id or a price. Operators update prices by pointing CONVEYOR_MODEL_CATALOG at their own file.
"""

import json
import os
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

DEFAULT_CATALOG = Path(__file__).with_name("catalog.json")
PER_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class ModelInfo:
    id: str
    aliases: tuple[str, ...]
    input: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    output: Decimal
    min_cache_tokens: int
    # The largest `max_tokens` the API accepts for this model (the documented "max output"); None in an
    # operator's catalog that does not say, in which case only the provider checks it.
    max_output_tokens: int | None = None
    retires_at: date | None = None
    # The pool of rate limits this model draws from; versions of one class share it ("opus-4").
    limit_group: str = ""


@dataclass(frozen=True)
class Catalog:
    default_model: str
    models: dict[str, ModelInfo]

    def get(self, model_id: str) -> ModelInfo | None:
        return self.models.get(model_id)

    def ids(self) -> list[str]:
        return sorted({m.id for m in self.models.values()})


def _parse(raw: dict) -> Catalog:
    models: dict[str, ModelInfo] = {}
    for entry in raw["models"]:
        info = ModelInfo(
            id=entry["id"],
            aliases=tuple(entry.get("aliases", [])),
            input=Decimal(entry["input"]),
            cache_write_5m=Decimal(entry["cache_write_5m"]),
            cache_write_1h=Decimal(entry["cache_write_1h"]),
            cache_read=Decimal(entry["cache_read"]),
            output=Decimal(entry["output"]),
            min_cache_tokens=int(entry["min_cache_tokens"]),
            max_output_tokens=int(entry["max_output_tokens"]) if entry.get("max_output_tokens") else None,
            retires_at=date.fromisoformat(entry["retires_at"]) if entry.get("retires_at") else None,
            limit_group=entry.get("limit_group", ""),
        )
        for name in (info.id, *info.aliases):
            models[name] = info
    return Catalog(default_model=raw["default_model"], models=models)


@cache
def catalog() -> Catalog:
    path = Path(os.environ.get("CONVEYOR_MODEL_CATALOG") or DEFAULT_CATALOG)
    return _parse(json.loads(path.read_text()))


def get_model(model_id: str) -> ModelInfo | None:
    return catalog().get(model_id)


def priciest_model(model_ids: list[str]) -> str:
    """The model of these whose calls cost the most (output price first, then input): what a budget
    reserves by when a block may be answered by any of them. Unknown models count as free."""
    def price(model_id: str) -> tuple[Decimal, Decimal]:
        info = get_model(model_id)
        return (info.output, info.input) if info is not None else (Decimal(0), Decimal(0))
    return max(model_ids, key=price)
