from collections.abc import Iterator

import pytest

from mock_provider.testing import MockHandle, running_mock
from tests.factories import SECRET, make_key
from tests.runs.conftest import clean_broker  # noqa: F401 (an autouse fixture, shared)


@pytest.fixture
def slow_mock() -> Iterator[MockHandle]:
    """The mock over HTTP, each reply 20 ms late: a step of many items takes many rounds."""
    with running_mock(api_keys=[SECRET], latency_ms=20) as handle:
        yield handle


@pytest.fixture
def mock_key(owner, slow_mock: MockHandle):
    return make_key(owner, base_url=slow_mock.base_url)

