import pytest
from django.contrib.auth import get_user_model


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
