from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from apps.counters.recording import BUFFER
from mock_provider.testing import MockHandle, running_mock
from tests.factories import SECRET, make_key

TOKEN = "metrics-test-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_broker() -> Iterator[None]:
    """The counters live in the broker's Redis db (its own in tests): each test starts from none, and
    with nothing left in this process's buffer."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    BUFFER.take()
    yield
    BUFFER.take()
    client.flushdb()


@pytest.fixture
def metrics_token(settings) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


class Scrape:
    """One answer of GET /metrics, parsed as Prometheus parses it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, sample_name: str, **labels: str) -> float:
        """The sum of the samples of that name whose labels include these (0 when none)."""
        return sum(
            s.value for f in self.families.values() for s in f.samples
            if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def labels(self, sample_name: str, label: str) -> set[str]:
        return {s.labels[label] for f in self.families.values() for s in f.samples
                if s.name == sample_name and label in s.labels}


@pytest.fixture
def scrape(metrics_token):
    def do() -> Scrape:
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_token}")
        assert response.status_code == 200, response.content
        return Scrape(response.content.decode())

    return do


@pytest.fixture
def mock() -> Iterator[MockHandle]:
    with running_mock(api_keys=[SECRET]) as handle:
        yield handle


@pytest.fixture
def mock_key(owner, mock: MockHandle):
    return make_key(owner, base_url=mock.base_url)


# The end-to-end fixtures (real Celery workers and beat, the mock provider in its own process).
from tests.e2e.conftest import (  # noqa: E402, F401
    broker,
    e2e_key,
    mock_process,
    pytest_runtest_makereport,
    stack,
)
