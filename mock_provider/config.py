"""Settings of one mock server. Every field can be set at start (keyword arguments, command flags) and
changed while it runs (`POST /_mock/config`), so a soak run can turn faults on and off mid-way.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Kinds of random fault a soak run can ask for, each with a probability per /v1/messages request (and per
# request of a message batch).
# Plain numbers are HTTP statuses answered with the API's error body; `429` carries `retry-after`
# (`fault_retry_after` seconds), `429_no_retry_after` does not, like the API's spend-cap 429s.
INJECTABLE_STATUSES: frozenset[int] = frozenset(
    {400, 401, 402, 403, 404, 408, 409, 413, 429, 500, 502, 503, 504, 529}
)
NAMED_FAULTS: tuple[str, ...] = ("429_no_retry_after", "hang", "drop", "stream_error")
FAULT_KINDS: frozenset[str] = frozenset({str(s) for s in INJECTABLE_STATUSES} | set(NAMED_FAULTS))

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024  # the API's limit for Messages and count_tokens
DEFAULT_BATCH_MAX_BODY_BYTES = 256 * 1024 * 1024  # the API's limit for one batch create
DEFAULT_BATCH_MAX_REQUESTS = 100_000
DAY_SECONDS = 86_400.0


def parse_fault_rates(spec: str | Mapping[str, Any] | None) -> dict[str, float]:
    """`"429=0.01,529=0.02,hang=0.001"` (or a mapping) -> {"429": 0.01, ...}, validated.

    Dashes are accepted for underscores (`stream-error`), so command-line spellings work too.
    """
    if not spec:
        return {}
    if isinstance(spec, str):
        pairs: list[tuple[str, Any]] = []
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"fault rate {part!r} is not kind=rate")
            pairs.append((name, value))
    else:
        pairs = list(spec.items())
    rates: dict[str, float] = {}
    for name, value in pairs:
        kind = str(name).strip().replace("-", "_")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {name!r}; known: {', '.join(sorted(FAULT_KINDS))}")
        try:
            rate = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"fault rate for {kind} is not a number: {value!r}") from None
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate for {kind} must be between 0 and 1, got {rate}")
        if rate:
            rates[kind] = rate
    if sum(rates.values()) > 1.0:
        raise ValueError("fault rates add up to more than 1")
    return rates


def _optional_limit(name: str, value: Any) -> int | None:
    if value is None:
        return None
    number = int(value)
    if number < 0:
        raise ValueError(f"{name} must be >= 0")
    return number or None  # 0 means "not limited", like leaving it out


@dataclass(frozen=True)
class MockConfig:
    # Fixed latency before a reply starts, and per output token after that (streams are paced at it).
    latency_ms: float = 0.0
    latency_per_token_ms: float = 0.0
    # Each reply's fixed latency is drawn uniformly from latency_ms +- latency_jitter_ms (never below 0),
    # as real calls of the same size spread; 0 = every reply takes exactly latency_ms.
    latency_jitter_ms: float = 0.0
    # Per-API-key limits per minute; None = not enforced (headers then report 1,000,000,000).
    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    # How much of a minute's limit one burst may take: each limited bucket holds limit x burst_seconds
    # / 60 and refills at limit / 60 a second. The API's token bucket "may be enforced over shorter
    # intervals" (60 RPM as 1 a second), so the default is one second's worth; 60 gives the old
    # minute-sized buckets.
    burst_seconds: float = 1.0
    # Random faults for soak runs: kind -> probability per /v1/messages request and per batch request
    # (see FAULT_KINDS; in a batch a fault makes that request `errored`).
    fault_rates: Mapping[str, float] = field(default_factory=dict)
    fault_retry_after: int = 1
    seed: int = 0
    # Valid API keys; empty = any non-empty key is valid.
    api_keys: frozenset[str] = frozenset()
    # Models answered 404 `not_found_error` ("model: <id>") on /v1/messages, as a retired model or one
    # not enabled for the key would be: ids or aliases, as the request names them.
    models_not_found: frozenset[str] = frozenset()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # How long a `hang` fault waits before answering anyway (clients time out well before this).
    hang_seconds: float = 3600.0
    # Message Batches: how long a batch takes from creation to its last request (spread evenly over its
    # requests, on the mock's clock), when its unfinished requests expire, and its size limits. A batch
    # keeps the values in force when it was created.
    batch_delay_ms: float = 100.0
    batch_expire_after_s: float = DAY_SECONDS
    batch_max_requests: int = DEFAULT_BATCH_MAX_REQUESTS
    batch_max_body_bytes: int = DEFAULT_BATCH_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        # Normalise and validate once, here, so every way of building a config gets the same checks.
        set_ = object.__setattr__
        set_(self, "latency_ms", float(self.latency_ms))
        set_(self, "latency_per_token_ms", float(self.latency_per_token_ms))
        set_(self, "latency_jitter_ms", float(self.latency_jitter_ms))
        if self.latency_ms < 0 or self.latency_per_token_ms < 0 or self.latency_jitter_ms < 0:
            raise ValueError("latencies must be >= 0")
        set_(self, "burst_seconds", float(self.burst_seconds))
        if not 0 < self.burst_seconds <= 60:
            raise ValueError("burst_seconds must be > 0 and <= 60")
        for name in ("rpm", "itpm", "otpm"):
            set_(self, name, _optional_limit(name, getattr(self, name)))
        set_(self, "fault_rates", parse_fault_rates(self.fault_rates))
        set_(self, "fault_retry_after", int(self.fault_retry_after))
        set_(self, "seed", int(self.seed))
        keys = self.api_keys
        if isinstance(keys, str):
            keys = [keys]
        set_(self, "api_keys", frozenset(str(k) for k in keys if k))
        missing = [self.models_not_found] if isinstance(self.models_not_found, str) else self.models_not_found
        set_(self, "models_not_found", frozenset(str(m) for m in missing if m))
        set_(self, "max_body_bytes", int(self.max_body_bytes))
        if self.max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be > 0")
        set_(self, "hang_seconds", float(self.hang_seconds))
        set_(self, "batch_delay_ms", float(self.batch_delay_ms))
        if self.batch_delay_ms < 0:
            raise ValueError("batch_delay_ms must be >= 0")
        set_(self, "batch_expire_after_s", float(self.batch_expire_after_s))
        if self.batch_expire_after_s <= 0:
            raise ValueError("batch_expire_after_s must be > 0")
        for name in ("batch_max_requests", "batch_max_body_bytes"):
            set_(self, name, int(getattr(self, name)))
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")

    def updated(self, changes: Mapping[str, Any]) -> "MockConfig":
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(
                f"unknown config fields: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return dataclasses.replace(self, **dict(changes))

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["fault_rates"] = dict(self.fault_rates)
        data["api_keys"] = sorted(self.api_keys)
        data["models_not_found"] = sorted(self.models_not_found)
        return data

