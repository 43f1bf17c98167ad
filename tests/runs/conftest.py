from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from mock_provider.testing import MockHandle, running_mock
from tests.factories import SECRET, make_key


@pytest.fixture(autouse=True)
def clean_broker() -> Iterator[None]:
    """Each test starts with an empty broker database (its own Redis db, see settings.test)."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield
    client.flushdb()


@pytest.fixture
def mock() -> Iterator[MockHandle]:
    with running_mock(api_keys=[SECRET]) as handle:
        yield handle


@pytest.fixture
def mock_key(owner, mock: MockHandle):
    """The owner's key, pointing at the in-process mock provider (live calls over HTTP)."""
    return make_key(owner, base_url=mock.base_url)
