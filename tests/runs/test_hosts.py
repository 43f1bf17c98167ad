"""Help reaches a host with a free serving place: hosts advertise their places, a `serve` task goes
to the queue of the host with the most free, and a full host that is given one hands it on."""

import json

import pytest
import redis
from django.conf import settings

from apps.runs.dispatch import (
    serve_dispatch_rollback_unsafe,
    serve_hand_over_rollback_unsafe,
    server_register,
)
from apps.runs.hosts import host_advertise, host_help_arrived, host_queue, host_with_free_place
from apps.runs.tasks import serve


@pytest.fixture
def broker() -> redis.Redis:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def one_place_per_host(settings) -> None:
    settings.CONVEYOR = {**settings.CONVEYOR, "SERVE_PROCESSES_PER_HOST": 1}


def serve_tasks_in(broker: redis.Redis, queue: str) -> list[dict]:
    return [json.loads(message)["headers"] for message in broker.lrange(queue, 0, -1)]


def test_no_advertised_host_means_no_host_is_known_free(broker):
    assert host_with_free_place() is None


def test_the_host_with_the_most_free_places_is_chosen(broker):
    host_advertise(host="small", places=1)
    host_advertise(host="big", places=3)
    assert server_register(worker="big:1", ttl_seconds=30)
    assert host_with_free_place() == "big"


def test_a_full_host_is_never_chosen(broker, one_place_per_host):
    host_advertise(host="full", places=1)
    assert server_register(worker="full:1", ttl_seconds=30)
    assert host_with_free_place() is None


def test_help_on_its_way_to_a_host_takes_its_place_until_it_arrives(broker):
    host_advertise(host="spare", places=1)
    assert host_with_free_place() == "spare"
    assert host_with_free_place() is None  # its one place is expected to be taken
    host_help_arrived(host="spare")
    assert host_with_free_place() == "spare"


def test_a_host_can_be_left_out(broker):
    host_advertise(host="me", places=2)
    assert host_with_free_place(exclude="me") is None


def test_help_is_sent_to_the_queue_of_a_host_with_a_free_place(broker):
    host_advertise(host="spare", places=1)
    assert serve_dispatch_rollback_unsafe(reason="busy asks for help", help_wanted=True)
    assert [h["task"] for h in serve_tasks_in(broker, host_queue("spare"))] == ["conveyor.runs.serve"]
    assert broker.llen("llm") == 0


def test_help_goes_to_the_shared_queue_when_no_host_is_known_free(broker):
    assert serve_dispatch_rollback_unsafe(reason="busy asks for help", help_wanted=True)
    assert broker.llen("llm") == 1


def test_a_full_host_given_a_serve_task_hands_it_on_to_a_host_with_a_free_place(
        broker, one_place_per_host, monkeypatch):
    monkeypatch.setenv("CONVEYOR_HOSTNAME", "full")
    host_advertise(host="full", places=1)
    host_advertise(host="spare", places=1)
    assert server_register(worker="full:1", ttl_seconds=30)

    result = serve.run()

    assert (result["served"], result["handed_on_to"]) == (False, "spare")
    assert len(serve_tasks_in(broker, host_queue("spare"))) == 1


def test_a_serve_task_handed_on_too_often_is_dropped(broker, one_place_per_host, monkeypatch):
    monkeypatch.setenv("CONVEYOR_HOSTNAME", "full")
    host_advertise(host="spare", places=1)
    assert server_register(worker="full:1", ttl_seconds=30)

    result = serve.run(hops=2)

    assert (result["served"], result["handed_on_to"]) == (False, None)
    assert broker.llen(host_queue("spare")) == 0


def test_a_wake_up_with_no_loop_alive_goes_to_the_shared_queue(broker):
    host_advertise(host="spare", places=1)
    assert serve_dispatch_rollback_unsafe(reason="run r")
    assert broker.llen("llm") == 1
    assert broker.llen(host_queue("spare")) == 0


def test_a_loop_handing_over_frees_its_place_for_the_next_loop_on_its_own_host(
        broker, one_place_per_host, monkeypatch):
    """The README's worker has one serving place: the loop at the end of its slice gives it up, so
    the next loop serves beside its last calls instead of after them."""
    monkeypatch.setenv("CONVEYOR_HOSTNAME", "only")
    host_advertise(host="only", places=1)
    assert server_register(worker="only:1", ttl_seconds=30)
    assert not server_register(worker="only:2", ttl_seconds=30)

    assert serve_hand_over_rollback_unsafe(worker="only:1", reason="only:1 handing over")

    assert [h["task"] for h in serve_tasks_in(broker, host_queue("only"))] == ["conveyor.runs.serve"]
    assert server_register(worker="only:2", ttl_seconds=30)
