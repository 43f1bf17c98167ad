import pytest

from tests.factories import make_key
from tests.runs.conftest import clean_broker, mock  # noqa: F401


@pytest.fixture
def key(owner):
    """A key for runs whose outcomes the test records itself (no provider is called)."""
    return make_key(owner)


@pytest.fixture
def operator(client, staff):
    """The admin's test client, logged in as a staff superuser."""
    client.force_login(staff)
    return client
