"""Helpers for the Message Batches tests: request bodies, and a batch run to its end through the SDK."""

import time
from typing import Any

import anthropic
from anthropic.types.messages import (
    MessageBatch,
    MessageBatchErroredResult,
    MessageBatchResult,
    MessageBatchSucceededResult,
)

from mock_provider.testing import MockHandle
from mock_provider.tests.conftest import MODEL

# Long enough that nothing happens unless the test moves the clock: 4 requests are due at 100 s each.
SLOW_MS = 400_000


def params(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 1000, "messages": [{"role": "user", "content": text}], **extra}


def item(custom_id: str, text: str = "A block of text.", **extra: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "params": params(text, **extra)}


def create(client: anthropic.Anthropic, *items: dict[str, Any]) -> MessageBatch:
    return client.messages.batches.create(requests=list(items))  # type: ignore[arg-type]


def results(client: anthropic.Anthropic, batch_id: str) -> dict[str, MessageBatchResult]:
    return {line.custom_id: line.result for line in client.messages.batches.results(batch_id)}


def run(mock: MockHandle, client: anthropic.Anthropic, *items: dict[str, Any]
        ) -> dict[str, MessageBatchResult]:
    """A batch under the default 100 ms delay, moved to its end on the mock's clock; its results."""
    batch = create(client, *items)
    mock.advance(1)
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
    return results(client, batch.id)


def succeeded(result: MessageBatchResult) -> anthropic.types.Message:
    assert isinstance(result, MessageBatchSucceededResult), result
    return result.message


def errored(result: MessageBatchResult) -> tuple[str, str]:
    assert isinstance(result, MessageBatchErroredResult), result
    assert result.error.type == "error"
    return result.error.error.type, result.error.error.message


def counts(batch: MessageBatch) -> dict[str, int]:
    return batch.request_counts.to_dict()


def wait_until(condition: Any, seconds: float = 20.0) -> None:
    """Poll (not in a tight loop) until the condition holds; a test fails rather than hangs."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
