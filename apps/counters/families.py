"""The names, labels and buckets of what the workers count, and the bounded vocabularies their label
values are mapped into. One place, read by recording.py (the workers) and apps/metrics/collector.py
(the scrape)."""

import functools
import re

from apps.providers.catalog import get_model
from apps.providers.errors import FailureKind

PREFIX = "conveyor_"
# The Redis hash every process adds its counts to (one hash: one HGETALL per scrape).
REDIS_KEY = "conveyor:metrics"

# Counter families (exposed with the `_total` suffix) and their label names, in label order.
BLOCKS_FINISHED = "blocks_finished"
PROVIDER_CALLS = "provider_calls"
PROVIDER_REFUSALS = "provider_refusals"
TOKENS = "tokens"
COST_USD = "cost_usd"
PACKS = "packs"
PACK_SPLITS = "pack_splits"
COUNTERS: dict[str, tuple[tuple[str, ...], str]] = {
    BLOCKS_FINISHED: (("status", "error_code"),
                      "Blocks that reached a terminal state (succeeded, failed, canceled), by error code"),
    PROVIDER_CALLS: (("model", "http_status", "error_type"),
                     "Provider calls made (live calls and batch requests), by HTTP status (none: no "
                     "answer) and error class (none: success)"),
    PROVIDER_REFUSALS: (("model", "http_status"),
                        "Calls the provider refused for capacity: 429 rate-limited, 529 overloaded"),
    TOKENS: (("model", "kind"),
             "Tokens billed, by kind: input, output, cache_write, cache_read"),
    COST_USD: (("model",), "Cost of the calls in US dollars, priced from the catalog"),
    PACKS: (("model",), "Packs formed (several blocks in one call)"),
    PACK_SPLITS: (("model",), "Packs split in two after a reply that overflowed or mis-mapped"),
}

# The call latency histogram: seconds from the call's start to its answer.
CALL_DURATION = "provider_call_duration_seconds"
CALL_DURATION_LABELS = ("model",)
CALL_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)

TOKEN_KINDS = ("input", "output", "cache_write", "cache_read")

OTHER = "other"
NONE = "none"

# Error codes a label may carry: the provider's documented error types, ours, and http_<status>.
# Anything else (an exception's class name, a foreign provider's invention) is counted as "other".
KNOWN_ERROR_CODES = frozenset({
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
    "request_too_large", "rate_limit_error", "api_error", "overloaded_error", "billing_error",
    "timeout_error", "timeout", "connection_error", "internal_error", "lane_closed",
    "throttle_exhausted", "lease_expired", "max_tokens", "unparseable_output", "refusal",
    "model_context_window_exceeded", "batch_expired", "batch_canceled", "base_url_redirect",
    "base_url_not_public", "usage_limit_reached", "enforced_spend_limit_reached",
    "contract_spend_limit_reached", "output_invalid",
})
_HTTP_CODE = re.compile(r"^http_[1-5][0-9][0-9]$")
ERROR_TYPES = frozenset(kind.value for kind in FailureKind)


def error_code_label(code: str | None) -> str:
    if not code:
        return NONE
    return code if code in KNOWN_ERROR_CODES or _HTTP_CODE.match(code) else OTHER


def error_type_label(kind: str | None) -> str:
    if not kind:
        return NONE
    return kind if kind in ERROR_TYPES else OTHER


def http_status_label(status: int | None) -> str:
    if status is None:
        return NONE
    return str(status) if 100 <= status <= 599 else OTHER


@functools.lru_cache(maxsize=256)
def model_label(model: str | None) -> str:
    """Models of the catalog only: a provider that answers with a dated variant (or anything else)
    does not mint a new label value."""
    return model if model and get_model(model) is not None else OTHER
