"""The team cast: an admin, a member, a viewer of team Acme; a member of team Globex; staff with and
without the admin's model permissions; plus tests/conftest.py's owner and outsider."""

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from mock_provider.testing import MockHandle, running_mock
from tests.factories import SECRET, make_key, make_team


def _user(name: str, **fields):
    return get_user_model().objects.create_user(
        name, email=f"{name}@example.com", password=f"{name}-pass", **fields
    )


@pytest.fixture
def alice(db):
    return _user("alice")


@pytest.fixture
def bob(db):
    return _user("bob")


@pytest.fixture
def carol(db):
    return _user("carol")


@pytest.fixture
def dave(db):
    return _user("dave")


@pytest.fixture
def acme(alice, bob, carol):
    """alice admin, bob member, carol viewer."""
    return make_team("acme", admin=alice, member=bob, viewer=carol)


@pytest.fixture
def globex(dave):
    return make_team("globex", admin=dave)


@pytest.fixture
def plain_staff(db):
    """Staff without any model permission: the admin refuses them everything."""
    return _user("plainstaff", is_staff=True)


@pytest.fixture
def reading_staff(db):
    """Staff with the admin's view_* permissions only."""
    user = _user("readingstaff", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    return get_user_model().objects.get(pk=user.pk)


@pytest.fixture
def operating_staff(db):
    """Staff with the admin's view_* and change_* permissions."""
    user = _user("operatingstaff", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__regex=r"^(view|change)_"))
    return get_user_model().objects.get(pk=user.pk)


@pytest.fixture
def clean_broker() -> Iterator[None]:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield
    client.flushdb()


@pytest.fixture
def mock(clean_broker) -> Iterator[MockHandle]:
    with running_mock(api_keys=[SECRET]) as handle:
        yield handle


@pytest.fixture
def acme_key(acme, alice, mock: MockHandle):
    """Acme's key, pointing at the in-process mock provider (live calls over HTTP)."""
    return make_key(alice, base_url=mock.base_url, team=acme, label="acme")
