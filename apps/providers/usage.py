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

    def attribute(self, input_weights: list[float], output_weights: list[float]) -> list["TokenUsage"]:
        """Share a packed call's usage among its blocks by what each brought: input tokens by
        `input_weights` (each block's own text plus an even part of the shared prefix), output tokens
        by `output_weights` (each block's reply), the cached prefix (written or read) evenly. The
        shares add up exactly (largest remainder)."""
        parts = len(input_weights)
        even = [1.0] * parts
        weights = {"input_tokens": input_weights, "output_tokens": output_weights,
                   "cache_creation_input_tokens": even, "cache_read_input_tokens": even,
                   "cache_creation_1h_tokens": even}
        shares = [dict.fromkeys(self.__dataclass_fields__, 0) for _ in range(parts)]
        for name, field_weights in weights.items():
            for i, amount in enumerate(_apportion(getattr(self, name), field_weights)):
                shares[i][name] = amount
        return [TokenUsage(**s) for s in shares]


def _apportion(total: int, weights: list[float]) -> list[int]:
    """`total` in whole parts proportional to `weights`, adding up exactly."""
    weight_sum = sum(weights)
    if weight_sum <= 0:
        weights, weight_sum = [1.0] * len(weights), float(len(weights))
    exact = [total * w / weight_sum for w in weights]
    parts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


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
