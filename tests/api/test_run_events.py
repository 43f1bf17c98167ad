"""Live progress, `GET /api/v1/runs/{id}/events/`: a Server-Sent Events stream of a run's counts, rate,
cost and lane state that ends with the run."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import reverse

from apps.accounts.services import token_create
from apps.runs.models import RunStatus
from apps.runs.services import blocks_claim, outcomes_record
from apps.runs.services.decisions import Outcome
from mock_provider.testing import running_mock
from tests.api.helpers import set_status
from tests.factories import SECRET, make_key, make_run
from tests.runs.conftest import clean_broker  # noqa: F401  (the engine test starts from an empty broker)
from tests.runs.helpers import in_thread, serve_until_settled

pytestmark = pytest.mark.django_db

SSE = "text/event-stream"


@dataclass
class Frame:
    event: str | None = None
    event_id: str | None = None
    data: Any = None
    retry: int | None = None
    comment: str | None = None


def frames(response: Any) -> Iterator[Frame]:
    """The stream's frames as they arrive: reading the next one lets the stream poll again."""
    buffer = ""
    for chunk in response.streaming_content:
        buffer += chunk.decode()
        while "\n\n" in buffer:
            raw, buffer = buffer.split("\n\n", 1)
            frame = Frame()
            for line in raw.split("\n"):
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    frame.comment = value
                elif name == "event":
                    frame.event = value
                elif name == "id":
                    frame.event_id = value
                elif name == "data":
                    frame.data = json.loads(value)
                elif name == "retry":
                    frame.retry = int(value)
            yield frame


def events(response: Any) -> Iterator[Frame]:
    return (frame for frame in frames(response) if frame.event)


def open_stream(client: Any, run: Any, **headers: str) -> Any:
    response = client.get(reverse("run-events", args=[run.pk]), HTTP_ACCEPT=SSE, **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith(SSE)
    return response


def record(run: Any, *, count: int) -> None:
    """`count` of the run's blocks answered, through the engine's own services (claim, record)."""
    claim = blocks_claim(run_id=run.pk, limit=count, worker="test")
    outcomes_record(run_id=run.pk, worker="test", outcomes=[
        Outcome(block_id=b.id, lease_token=claim.lease_token, attempt=b.attempt, output=f"out {b.uid}")
        for b in claim.blocks])


def next_with(stream: Iterator[Frame], succeeded: int) -> Frame:
    for frame in stream:
        if frame.event == "end" or frame.data["counts"]["succeeded"] >= succeeded:
            return frame
    raise AssertionError("the stream closed first")


@pytest.fixture(autouse=True)
def short_streams(settings):
    """A stream that nothing ends closes after half a second here."""
    settings.RUN_EVENTS = {**settings.RUN_EVENTS, "MAX_SECONDS": 0.5}


@pytest.fixture
def run(owner, offline_key):
    return make_run(owner, offline_key, ["one", "two", "three"], name="three blocks")


# --- the stream ---------------------------------------------------------------------------------------

def test_the_stream_follows_a_run_to_its_end_and_closes(api, owner, run):
    stream = events(open_stream(api(owner), run))
    first = next(stream)
    assert (first.event, first.data["status"], first.data["counts"]["succeeded"]) == ("progress", "queued", 0)
    record(run, count=1)
    assert next(stream).data["counts"] == {"total": 3, "succeeded": 1, "failed": 0, "canceled": 0,
                                           "remaining": 2}
    record(run, count=2)
    last = next_with(stream, 3)
    assert (last.event, last.data["status"], last.data["counts"]["succeeded"]) == ("end", "complete", 3)
    assert last.data["progress"] == 1.0
    assert list(stream) == []


def test_events_carry_the_cost_the_rate_and_the_lane_state(api, owner, run):
    stream = events(open_stream(api(owner), run))
    first = next(stream)
    assert first.data["rate"] is None  # one look at the run is no rate yet
    record(run, count=1)
    moved = next_with(stream, 1)
    assert moved.data["rate"] > 0
    assert set(moved.data) >= {"cost_usd", "reserved_usd", "in_flight", "lane", "waiting_reason"}


def test_every_event_has_an_id_and_an_unchanged_run_is_not_described_twice(api, owner, run):
    stream = frames(open_stream(api(owner), run))
    first = next(stream)
    assert first.event_id
    # Nothing happens: the stream stays quiet until its time is up, then says when to come back.
    rest = list(stream)
    assert [f.event for f in rest if f.event] == []
    assert rest[-1].retry == 500


def test_a_reconnect_with_the_last_event_id_gets_only_what_changed(api, owner, run):
    client = api(owner)
    stream = events(open_stream(client, run))
    seen = next(stream)
    again = list(events(open_stream(client, run, HTTP_LAST_EVENT_ID=seen.event_id)))
    assert again == []


def test_a_stream_writes_keep_alive_comments_while_the_run_is_quiet(api, owner, run, settings):
    settings.RUN_EVENTS = {**settings.RUN_EVENTS, "KEEPALIVE_SECONDS": 0.05}
    comments = [f.comment for f in frames(open_stream(api(owner), run)) if f.comment]
    assert "keep-alive" in comments


def test_an_ended_run_answers_one_end_event_and_then_204_to_a_client_that_saw_it(api, owner, run):
    client = api(owner)
    record(run, count=3)
    (end,) = events(open_stream(client, run))
    assert (end.event, end.data["status"]) == ("end", "complete")
    response = client.get(reverse("run-events", args=[run.pk]), HTTP_ACCEPT=SSE,
                          HTTP_LAST_EVENT_ID=end.event_id)
    assert response.status_code == 204


def test_a_paused_run_ends_the_stream_saying_why(api, owner, run):
    set_status(run, RunStatus.PAUSED, paused_cause="budget", paused_reason="budget of $1 spent")
    (end,) = events(open_stream(api(owner), run))
    assert (end.event, end.data["status"], end.data["paused_cause"]) == ("end", "paused", "budget")
    assert end.data["waiting_reason"].startswith("paused: ")


# --- who may listen -------------------------------------------------------------------------------------

def test_another_users_run_is_a_404(api, outsider, run):
    response = api(outsider).get(reverse("run-events", args=[run.pk]), HTTP_ACCEPT=SSE)
    assert response.status_code == 404
    assert response.content.decode().startswith("event: error\n")


def test_staff_may_follow_anyones_run(api, staff, run):
    assert next(events(open_stream(api(staff), run))).data["id"] == str(run.pk)


def test_listening_needs_authentication(api, run):
    response = api().get(reverse("run-events", args=[run.pk]), HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_token_works_as_for_the_rest_of_the_api(client, owner, run):
    token = token_create(user=owner).token
    assert next(events(open_stream(client, run, HTTP_AUTHORIZATION=f"Token {token}"))).event == "progress"


# --- with a real serving loop ---------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("clean_broker")
def test_the_stream_of_a_run_served_by_the_engine_ends_with_the_run(api, owner, settings):
    settings.RUN_EVENTS = {**settings.RUN_EVENTS, "MAX_SECONDS": 30.0}
    with running_mock(api_keys=[SECRET], latency_ms=40) as mock:
        key = make_key(owner, base_url=mock.base_url)
        run = make_run(owner, key, [f"essay {i}" for i in range(12)], parallelism=2)
        response = open_stream(api(owner), run)
        worker = in_thread(serve_until_settled, run)
        seen = list(events(response))
        worker.join(30)
    done = [f.data["counts"]["succeeded"] for f in seen]
    assert done == sorted(done) and len(set(done)) > 2, done  # it moved, never backwards
    assert (seen[-1].event, seen[-1].data["status"], done[-1]) == ("end", "complete", 12)
    assert [f.event for f in seen[:-1]] == ["progress"] * (len(seen) - 1)
