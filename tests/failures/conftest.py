import pytest

from tests.factories import make_key
from tests.runs.conftest import clean_broker, key, mock  # noqa: F401


@pytest.fixture
def offline_key(owner):
    """A key for runs whose outcomes the test records itself (no provider is called)."""
    return make_key(owner)
