"""Turning a batch's result lines into the Outcomes that live calls produce, so that everything after
(fencing, decisions, attempts, counts, cost, dead-letter rows, passes) is the same code path."""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from apps.core.redaction import redact
from apps.providers.errors import FailureKind, ProviderFailure, classify_error_body
from apps.providers.structured import document_of, without_document
from apps.providers.usage import TokenUsage, cost_usd
from apps.runs.services.decisions import Outcome


@dataclass(frozen=True)
class BatchItem:
    """What the batch row remembers of one request: the block and its attempt number."""

    block_id: int
    attempt: int
    number: int


def custom_id(token: UUID, block_id: int) -> str:
    """`^[a-zA-Z0-9_-]{1,64}$`: the claim's token (so a result can only answer its own claim) and the
    block."""
    return f"{token.hex}_{block_id}"


def parse_custom_id(value: str) -> tuple[str, int] | None:
    token, _, block = value.partition("_")
    return (token, int(block)) if block.isdigit() else None


def _text(message: dict[str, Any]) -> str:
    return "".join(b.get("text", "") for b in message.get("content") or [] if b.get("type") == "text")


def _read_document(outcome: Outcome, output_schema: str) -> None:
    """A structured run's answer: its document, or why it is none (output_invalid)."""
    if outcome.failure is not None:
        outcome.failure = without_document(outcome.failure, packed=False)
        return
    try:
        outcome.output_json = document_of(outcome.output or "", output_schema)
    except ProviderFailure as failure:
        failure.request_id, failure.usage = outcome.request_id, outcome.usage
        outcome.failure, outcome.output = failure, None


def outcome_of(result: dict[str, Any], item: BatchItem, *, token: UUID, model: str, batch_id: int,
               secrets: tuple[str, ...], output_schema: str = "") -> Outcome:
    """One `{"custom_id", "result": {...}}` line as the Outcome of the block's call; for a structured
    run (`output_schema`, canonical JSON), its answer read and validated as a live call's is."""
    kind = result.get("type")
    common: dict[str, Any] = {"block_id": item.block_id, "lease_token": token, "attempt": item.attempt,
              "number": item.number, "model": model, "batch_id": batch_id}
    if kind == "succeeded":
        message = result.get("message") or {}
        usage = TokenUsage.from_json(message.get("usage"))
        outcome = Outcome(usage=usage, cost_usd=cost_usd(model, usage, batch=True),
                          request_id=str(message.get("id") or ""), output=_text(message), **common)
        stop = message.get("stop_reason")
        if stop == "max_tokens":
            outcome.output = None
            outcome.failure = ProviderFailure(
                FailureKind.OUTPUT_PROBLEM, "max_tokens",
                f"reply stopped at max_tokens after {usage.output_tokens} tokens", http_status=200,
                partial_text=_text(message), usage=usage)
        elif stop in ("refusal", "model_context_window_exceeded"):
            outcome.output = None
            outcome.failure = ProviderFailure(FailureKind.BLOCK_FATAL, stop, f"model stopped: {stop}",
                                              http_status=200, partial_text=_text(message), usage=usage)
        if output_schema:
            _read_document(outcome, output_schema)
        return outcome
    if kind == "errored":
        failure = classify_error_body(result.get("error"), secrets=secrets)
        return Outcome(failure=failure, payload_snapshot=redact({"batch_result": "errored"}, secrets),
                       **common)
    if kind == "expired":
        # Not the block's fault: no attempt used; it goes into the next batch.
        return Outcome(failure=ProviderFailure(FailureKind.THROTTLED, "batch_expired",
                                               "the batch expired before this request was answered",
                                               retry_after=0.0), **common)
    # canceled: the run's cancel (the block ends canceled) or a switch to live (it goes back to work).
    return Outcome(failure=ProviderFailure(FailureKind.THROTTLED, "batch_canceled",
                                           "the batch was canceled before this request was answered",
                                           retry_after=0.0), **common)
