"""What a lane's limits are before the provider has said: the key's own settings (explicit limits its
owner set, or the documented values of its tier). What the provider says, in its
`anthropic-ratelimit-*` headers, is read by apps.providers.headers."""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from apps.providers.catalog import get_model

TIERS_FILE = Path(__file__).with_name("tiers.json")


@dataclass(frozen=True)
class Limits:
    """Requests, input tokens and output tokens per minute; 0 = not limited (or not known yet)."""

    rpm: int = 0
    itpm: int = 0
    otpm: int = 0
    # "explicit" (the key's owner set them: a cap that always applies), "tier" (the documented values
    # of the key's tier: a guess the headers replace), "" (nothing known before the first response).
    source: str = ""

    @property
    def known(self) -> bool:
        return bool(self.rpm or self.itpm or self.otpm)


@cache
def _tiers() -> dict[str, Any]:
    tiers: dict[str, Any] = json.loads(TIERS_FILE.read_text())
    return tiers


def tier_choices() -> list[tuple[str, str]]:
    return [(name, entry["label"]) for name, entry in _tiers()["tiers"].items()]


def limit_group(model: str) -> str:
    """The rate-limit pool a model draws from (versions of one class share a pool)."""
    info = get_model(model)
    if info is None:
        return model
    return info.limit_group or info.id


def tier_limits(tier: str, model: str) -> Limits:
    entry = _tiers()["tiers"].get(tier)
    if entry is None:
        return Limits()
    group = limit_group(model)
    values = entry["groups"].get(group) or entry["groups"].get("default")
    if values is None:
        return Limits()
    rpm, itpm, otpm = values
    return Limits(rpm=rpm, itpm=itpm, otpm=otpm, source="tier")


def key_limits(*, tier: str, rpm: int | None, itpm: int | None, otpm: int | None, model: str
               ) -> Limits:
    """Explicit limits win per dimension; the tier fills the others; else nothing is known."""
    explicit = Limits(rpm=rpm or 0, itpm=itpm or 0, otpm=otpm or 0, source="explicit")
    if explicit.known:
        guess = tier_limits(tier, model)
        return Limits(rpm=explicit.rpm or guess.rpm, itpm=explicit.itpm or guess.itpm,
                      otpm=explicit.otpm or guess.otpm, source="explicit")
    return tier_limits(tier, model)
