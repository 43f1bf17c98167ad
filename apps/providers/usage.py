from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from apps.providers.catalog import PER_MILLION, get_model


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    # Of cache_creation_input_tokens, those written with the 1h TTL (priced higher).
    cache_creation_1h_tokens: int = 0

    @classmethod
    def from_sdk(cls, usage: Any) -> "TokenUsage":
        if usage is None:
            return cls()
        creation = getattr(usage, "cache_creation", None)
        return cls(
            input_tokens=usage.input_tokens or 0,
            output_tokens=usage.output_tokens or 0,
            cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
            cache_read_input_tokens=usage.cache_read_input_tokens or 0,
            cache_creation_1h_tokens=(getattr(creation, "ephemeral_1h_input_tokens", 0) or 0)
            if creation is not None
            else 0,
        )

    @classmethod
    def from_json(cls, usage: dict[str, Any] | None) -> "TokenUsage":
        if not usage:
            return cls()
        creation = usage.get("cache_creation") or {}
        return cls(
            input_tokens=usage.get("input_tokens") or 0,
            output_tokens=usage.get("output_tokens") or 0,
            cache_creation_input_tokens=usage.get("cache_creation_input_tokens") or 0,
            cache_read_input_tokens=usage.get("cache_read_input_tokens") or 0,
            cache_creation_1h_tokens=creation.get("ephemeral_1h_input_tokens") or 0,
        )

    @property
    def rate_limited_input(self) -> int:
        """What counts toward a lane's input tokens per minute: cache reads do not."""
        return self.input_tokens + self.cache_creation_input_tokens

    def __add__(self, other: "TokenUsage") -> "TokenUsage":
        return TokenUsage(
            *(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__)
        )

    def split(self, parts: int) -> list["TokenUsage"]:
        """Share a packed call's usage among its blocks so that the shares add up exactly."""
        fields = list(self.__dataclass_fields__)
        shares = [dict.fromkeys(fields, 0) for _ in range(parts)]
        for f in fields:
            total = getattr(self, f)
            base, rest = divmod(total, parts)
            for i in range(parts):
                shares[i][f] = base + (1 if i < rest else 0)
        return [TokenUsage(**s) for s in shares]


# The Message Batches API bills every token at half the live price (caching multipliers stack on it).
BATCH_DISCOUNT = Decimal("0.5")


def cost_usd(model: str, usage: TokenUsage, *, batch: bool = False) -> Decimal:
    """Price of a call (a batch request at half price); an unknown model costs nothing rather than
    guessing (submission refuses unknown models, so this only happens when the catalog shrank under a
    running run)."""
    info = get_model(model)
    if info is None:
        return Decimal(0)
    write_1h = usage.cache_creation_1h_tokens
    write_5m = usage.cache_creation_input_tokens - write_1h
    total = (
        usage.input_tokens * info.input
        + write_5m * info.cache_write_5m
        + write_1h * info.cache_write_1h
        + usage.cache_read_input_tokens * info.cache_read
        + usage.output_tokens * info.output
    )
    if batch:
        total *= BATCH_DISCOUNT
    return (total / PER_MILLION).quantize(Decimal("0.00000001"))
