import pytest
from django.contrib.auth import get_user_model

from tests.factories import make_key


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user("owner", password="owner-pass")


@pytest.fixture
def outsider(db):
    return get_user_model().objects.create_user("outsider", password="outsider-pass")


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("staff", password="staff-pass", is_staff=True,
                                                is_superuser=True)


@pytest.fixture
def offline_key(owner):
    """The owner's key for runs whose outcomes the test records itself: no provider is ever called
    with it (see tests/runs/conftest.py's `mock_key` for one that reaches the in-process mock)."""
    return make_key(owner)
