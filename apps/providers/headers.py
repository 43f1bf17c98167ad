"""The rate-limit headers every Messages API response carries:
`anthropic-ratelimit-{requests,input-tokens,output-tokens}-{limit,remaining,reset}` (integers, and
RFC 3339 times for reset). When only the combined `tokens-*` ones are sent, they bound input tokens."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The mock (and a proxy with no limits) reports 1,000,000,000 for a limit it does not enforce.
UNLIMITED = 1_000_000_000


@dataclass(frozen=True)
class Dimension:
    limit: int = 0
    remaining: int = -1
    reset: datetime | None = None


@dataclass(frozen=True)
class RateLimitHeaders:
    requests: Dimension = Dimension()
    input_tokens: Dimension = Dimension()
    output_tokens: Dimension = Dimension()

    @property
    def present(self) -> bool:
        return bool(self.requests.limit or self.input_tokens.limit or self.output_tokens.limit)

    def reset_in(self, now: datetime | None = None) -> float | None:
        """Seconds until the latest reset of an exhausted dimension (a hint when a 429 says no
        Retry-After)."""
        now = now or datetime.now(UTC)
        waits = [
            (d.reset - now).total_seconds()
            for d in (self.requests, self.input_tokens, self.output_tokens)
            if d.reset is not None and d.remaining == 0
        ]
        return max(waits) if waits else None


def _int(value: str | None, default: int) -> int:
    try:
        return int(float(value)) if value is not None else default
    except ValueError:
        return default


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_headers(headers: Any) -> RateLimitHeaders:
    get = getattr(headers, "get", None)
    if get is None:
        return RateLimitHeaders()

    def dimension(name: str) -> Dimension:
        prefix = f"anthropic-ratelimit-{name}-"
        return Dimension(limit=_int(get(prefix + "limit"), 0), remaining=_int(get(prefix + "remaining"), -1),
                         reset=_time(get(prefix + "reset")))

    input_tokens = dimension("input-tokens")
    if not input_tokens.limit:
        input_tokens = dimension("tokens")
    return RateLimitHeaders(requests=dimension("requests"), input_tokens=input_tokens,
                            output_tokens=dimension("output-tokens"))
