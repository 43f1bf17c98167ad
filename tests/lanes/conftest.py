from collections.abc import Iterator

import pytest
import redis
from django.conf import settings


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[None]:
    """Only this suite's own Redis db (TEST_REDIS_URL), emptied before and after each test."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield
    client.flushdb()
