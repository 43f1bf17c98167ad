import pytest


@pytest.fixture
def operator(client, staff):
    """The admin's test client, logged in as a staff superuser."""
    client.force_login(staff)
    return client
