"""What the mock saw: counters by status, path, model, key, outcome and fault, tokens billed, and a
log of recent requests with their arrival time on the mock's clock (tests use it to see, for example,
that the SDK waited `retry-after` seconds between two attempts, without timing anything themselves).
Message batches have counters of their own: batches created, canceled, ended and deleted, their
requests by result type and fault, and the tokens their requests were billed.
"""

from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

LOG_SIZE = 10_000
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
BATCH_EVENTS = ("created", "canceled", "ended", "deleted")
RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")


def key_label(api_key: str) -> str:
    """Short test keys are shown as they are; anything that looks like a real key is shortened."""
    if len(api_key) <= 16:
        return api_key
    return f"{api_key[:7]}...{api_key[-4:]}"


@dataclass
class RequestRecord:
    seq: int
    t: float  # arrival, on the mock's clock (seconds; monotonic plus any advance())
    method: str
    path: str
    request_id: str
    route: str  # the path with ids as placeholders (`/v1/messages/batches/{message_batch_id}`)
    retry_count: int | None  # the SDK's x-stainless-retry-count header
    status: int | None = None  # None when no response was sent (dropped, client went away)
    outcome: str = ""  # ok | error | stream_error | dropped | disconnected
    model: str | None = None
    api_key: str | None = None
    stream: bool = False
    structured: bool = False  # the request carried a JSON Schema (output_config.format)
    fault: str | None = None  # e.g. "directive:status=529 times=2", "random:529"
    usage: dict[str, int] | None = None
    duration: float | None = None  # seconds, on the mock's clock


@dataclass
class Stats:
    log: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=LOG_SIZE))
    total: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0  # the most requests in flight at once since the last reset
    # Arrivals of the /v1/messages requests answered 200, on the mock's clock: how many, the first and
    # the last (a benchmark's admitted rate, however long the log).
    messages_ok: int = 0
    first_ok_t: float | None = None
    last_ok_t: float | None = None
    by_status: Counter[str] = field(default_factory=Counter)
    by_path: Counter[str] = field(default_factory=Counter)
    by_model: Counter[str] = field(default_factory=Counter)
    by_api_key: Counter[str] = field(default_factory=Counter)
    by_outcome: Counter[str] = field(default_factory=Counter)
    by_fault: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)
    batches: Counter[str] = field(default_factory=Counter)
    batch_results: Counter[str] = field(default_factory=Counter)
    batch_faults: Counter[str] = field(default_factory=Counter)
    batch_tokens: Counter[str] = field(default_factory=Counter)

    def begin(self, record: RequestRecord) -> None:
        self.total += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        self.by_path[record.route] += 1
        self.log.append(record)

    def finish(self, record: RequestRecord, now: float) -> None:
        self.in_flight -= 1
        record.duration = now - record.t
        self.by_status[str(record.status) if record.status is not None else "none"] += 1
        self.by_outcome[record.outcome] += 1
        if record.status == 200 and record.path == "/v1/messages":
            self.messages_ok += 1
            self.first_ok_t = record.t if self.first_ok_t is None else min(self.first_ok_t, record.t)
            self.last_ok_t = record.t if self.last_ok_t is None else max(self.last_ok_t, record.t)
        if record.model:
            self.by_model[record.model] += 1
        if record.api_key is not None:
            self.by_api_key[record.api_key] += 1
        if record.fault:
            self.by_fault[record.fault] += 1
        if record.usage:
            for name in TOKEN_FIELDS:
                self.tokens[name] += record.usage.get(name, 0)

    def batch_result(self, result_type: str, *, usage: dict[str, Any] | None = None) -> None:
        self.batch_results[result_type] += 1
        if usage:
            for name in TOKEN_FIELDS:
                self.batch_tokens[name] += usage.get(name, 0)

    def to_json(self, limit: int | None = None) -> dict[str, Any]:
        records = list(self.log)
        if limit is not None:
            records = records[-limit:] if limit else []
        return {
            "requests": self.total,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "messages_ok": {"count": self.messages_ok, "first_t": self.first_ok_t, "last_t": self.last_ok_t},
            "by_status": dict(self.by_status),
            "by_path": dict(self.by_path),
            "by_model": dict(self.by_model),
            "by_api_key": dict(self.by_api_key),
            "by_outcome": dict(self.by_outcome),
            "by_fault": dict(self.by_fault),
            "tokens": {name: self.tokens[name] for name in TOKEN_FIELDS},
            "batches": {
                **{event: self.batches[event] for event in BATCH_EVENTS},
                "results": {kind: self.batch_results[kind] for kind in RESULT_TYPES},
                "by_fault": dict(self.batch_faults),
                "tokens": {name: self.batch_tokens[name] for name in TOKEN_FIELDS},
            },
            "log": [asdict(r) for r in records],
        }
