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


@pytest.fixture
def loopback_only(monkeypatch):
    """Any Python socket connecting anywhere but this machine fails the test at once, before a packet
    leaves: the security tests feed fake public DNS answers, and a bug must not turn one into traffic."""
    import ipaddress
    import socket

    def check(address: object) -> None:
        if not isinstance(address, tuple):  # a unix socket path
            return
        host = str(address[0]).split("%", 1)[0]
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = host == "localhost"
        if not local:
            raise AssertionError(f"a test tried to connect to {address!r}, off this machine")

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self: socket.socket, address: object) -> None:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture(autouse=True)
def clean_counters() -> None:
    """Throttle and failed-token counters start at zero in every test. They live in the test Redis db
    under the test cache's prefix; only those keys are deleted (the broker's share the db)."""
    import redis
    from django.conf import settings

    cache = settings.CACHES["default"]
    client = redis.Redis.from_url(cache["LOCATION"])
    keys = list(client.scan_iter(f"{cache['KEY_PREFIX']}:*", count=1000))
    if keys:
        client.delete(*keys)
