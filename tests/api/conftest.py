"""The API's cast: owner, outsider and staff (tests/conftest.py), a key and a small run of the owner's,
and clients authenticated as any of them."""

from collections.abc import Callable, Iterator

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.runs.models import Run
from tests.factories import make_run


@pytest.fixture(autouse=True)
def fresh_throttles() -> Iterator[None]:
    """Throttle counts live in the cache; each test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api() -> Callable[..., APIClient]:
    def client_for(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for


@pytest.fixture
def run(owner, offline_key) -> Run:
    return make_run(owner, offline_key, ["one", "two", "three"], name="three blocks")
