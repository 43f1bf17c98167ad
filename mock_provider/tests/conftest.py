"""Every mock test talks to a real mock server over HTTP through the official SDK; none needs a database."""

from collections.abc import Iterator

import anthropic
import pytest

from mock_provider.testing import MockHandle, running_mock

MODEL = "claude-haiku-4-5"


@pytest.fixture
def mock() -> Iterator[MockHandle]:
    with running_mock() as handle:
        yield handle


@pytest.fixture
def client(mock: MockHandle) -> Iterator[anthropic.Anthropic]:
    with mock.client() as sdk_client:
        yield sdk_client


def ask(client: anthropic.Anthropic, text: str, **params: object) -> anthropic.types.Message:
    """One ordinary call: a single user message."""
    params.setdefault("model", MODEL)
    params.setdefault("max_tokens", 1000)
    return client.messages.create(messages=[{"role": "user", "content": text}], **params)  # type: ignore[arg-type]
