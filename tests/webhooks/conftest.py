"""Webhook tests: a real HTTP receiver on 127.0.0.1 (allowlisted in test settings), runs ended through
the services, and deliveries made by the same task code a worker runs."""

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import redis
from django.conf import settings

from apps.runs.models import Run
from apps.runs.services import run_cancel
from apps.webhooks import services as webhook_services
from apps.webhooks.models import WebhookDelivery
from apps.webhooks.services import webhook_secret_rotate
from tests.factories import make_run
from tests.fake_servers import Answer, FakeServer, Received, serving


@pytest.fixture(autouse=True)
def clean_broker() -> Iterator[None]:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield
    client.flushdb()


@dataclass
class Receiver:
    """A receiver whose answers are scripted: the next status in `statuses` for each request (the last
    one repeats)."""

    statuses: list[int] = field(default_factory=lambda: [204])
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: FakeServer | None = None

    def answer(self, request: Received) -> Answer:
        with self.lock:
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return Answer(status, self.body, dict(self.headers))

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.base_url + "/hooks/conveyor?source=test"

    @property
    def received(self) -> list[Received]:
        assert self.server is not None
        return self.server.received


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    with serving(state.answer) as server:
        state.server = server
        yield state


@pytest.fixture
def secret(owner) -> str:
    """The owner's signing secret, as shown once at creation."""
    return webhook_secret_rotate(owner=owner)[1]


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    """Deliveries queued for a worker are collected here instead of going to the broker."""
    ids: list[int] = []
    monkeypatch.setattr(webhook_services, "_enqueue", lambda delivery_id, **kw: ids.append(delivery_id))
    return ids


@pytest.fixture
def deliver_inline(monkeypatch) -> list[int]:
    """A queued delivery runs at once, in this process, through the task a worker runs."""
    from apps.webhooks.tasks import deliver_webhook

    ids: list[int] = []

    def run_now(delivery_id: int, **kw: object) -> None:
        ids.append(delivery_id)
        deliver_webhook(delivery_id)

    monkeypatch.setattr(webhook_services, "_enqueue", run_now)
    return ids


@pytest.fixture
def end_run(django_capture_on_commit_callbacks) -> Callable[[Run], WebhookDelivery]:
    """End a run through the services (cancel: its blocks are pending, none in flight), with the
    after-commit callbacks (run_finished, and the delivery's queueing) run as a commit would."""

    def end(run: Run) -> WebhookDelivery:
        with django_capture_on_commit_callbacks(execute=True):
            run_cancel(run_id=run.pk)
        return WebhookDelivery.objects.get(run=run, pass_number=run.current_pass)

    return end


@pytest.fixture
def hooked_run(owner, offline_key, secret, receiver) -> Run:
    """A run of two blocks whose events go to the receiver."""
    return make_run(owner, offline_key, ["one", "two"], webhook_url=receiver.url, name="hooked")


@pytest.fixture
def end_run_plain(django_capture_on_commit_callbacks) -> Callable[[Run], None]:
    def end(run: Run) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            run_cancel(run_id=run.pk)

    return end


@pytest.fixture
def api():
    from django.core.cache import cache
    from rest_framework.test import APIClient

    cache.clear()

    def client_for(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for
