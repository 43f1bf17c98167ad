"""Shared cast and props for key tests: two secrets (one shaped like an Anthropic key, one that matches
no redaction pattern, so that redaction of the exact secret is what gets tested), the in-process mock
provider, and a tiny fake provider that echoes the key back in its errors."""

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.test import APIClient

from apps.keys.models import ProviderKey
from apps.keys.services import key_create
from config.celery_app import app as celery_app
from mock_provider.testing import MockHandle, running_mock

GOOD_SECRET = "sk-ant-fake.Good7Hq2Lw9Xv4Rb8Nc1Jd6Kf3MtPz0Aa"
# Matches none of the redaction patterns: only the exact-secret replacement can hide it.
PROXY_SECRET = "proxy-credential-7Hq2Lw9Xv4Rb8Nc1Jd6Kf3MtQ"


@pytest.fixture
def make_key() -> Callable[..., ProviderKey]:
    def make(owner, *, label: str = "Main", secret: str = GOOD_SECRET, base_url: str = "") -> ProviderKey:
        return key_create(owner=owner, label=label, secret=secret, base_url=base_url)

    return make


@pytest.fixture
def mock_provider() -> Iterator[MockHandle]:
    """The project's mock Anthropic API; only GOOD_SECRET is a valid key there."""
    with running_mock(api_keys=[GOOD_SECRET]) as handle:
        yield handle


@dataclass
class FakeProvider:
    """Answers every request with one error status and an error message that quotes the API key it
    received, like a careless proxy would."""

    base_url: str = ""
    status: int = 401
    error_type: str = "authentication_error"
    seen_keys: list[str] = field(default_factory=list)


@pytest.fixture
def echoing_provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            key = self.headers.get("x-api-key") or self.headers.get("authorization", "").removeprefix(
                "Bearer "
            )
            fake.seen_keys.append(key)
            body = json.dumps({
                "type": "error",
                "error": {"type": fake.error_type, "message": f"invalid x-api-key {key}"},
                "request_id": "req_011CEchoingFake",
            }).encode()
            self.send_response(fake.status)
            self.send_header("content-type", "application/json")
            self.send_header("request-id", "req_011CEchoingFake")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Tasks run inline when enqueued; no worker needed. Combine with
    django_capture_on_commit_callbacks(execute=True), since enqueueing waits for the commit."""
    previous = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


@pytest.fixture
def api() -> Callable[..., APIClient]:
    def client_for(user) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return client_for

