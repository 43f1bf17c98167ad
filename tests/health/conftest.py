import socket

import pytest


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once, for real."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
