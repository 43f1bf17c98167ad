"""The serving loop's life, without the database: asking for help, stopping, ending when idle,
honouring its serving place's registration."""

import asyncio
import threading

import pytest

from apps.runs.serving import loop as loop_module
from apps.runs.serving.loop import HELP_COOLDOWN_SECONDS, ServingLoop
from tests.runs.serving.cast import demand, slot


@pytest.fixture
def dispatched(monkeypatch) -> list[str]:
    reasons: list[str] = []

    def dispatch(*, reason: str = "", help_wanted: bool = False) -> bool:
        reasons.append(reason)
        return True

    def hand_over(*, worker: str, reason: str) -> bool:
        reasons.append(reason)
        return True

    monkeypatch.setattr(loop_module, "serve_dispatch_rollback_unsafe", dispatch)
    monkeypatch.setattr(loop_module, "serve_hand_over_rollback_unsafe", hand_over)
    return reasons


@pytest.fixture
def serving(settings) -> ServingLoop:
    settings.CONVEYOR = {**settings.CONVEYOR, "SERVE_HELP_LAG_SECONDS": 0.05}
    return ServingLoop(worker="host:1", slice_seconds=60, idle_exit_seconds=1.0, refresh_seconds=0.2)


def test_a_late_loop_with_work_asks_for_help_once_per_cooldown(serving, dispatched):
    serving.lag, serving.next_help = 0.2, 0.0
    serving.state.demands = {"r": demand("r")}
    serving._ask_for_help_if_late(now=10.0)
    assert serving.messages.wait(5)
    serving._ask_for_help_if_late(now=11.0)
    serving._ask_for_help_if_late(now=10.0 + HELP_COOLDOWN_SECONDS)
    assert serving.messages.wait(5)
    assert dispatched == ["host:1 asks for help"] * 2


def test_a_loop_on_time_asks_no_one(serving, dispatched):
    serving.lag, serving.next_help = 0.01, 0.0
    serving.state.demands = {"r": demand("r")}
    serving._ask_for_help_if_late(now=10.0)
    assert dispatched == []


def test_a_late_loop_with_no_work_asks_no_one(serving, dispatched):
    serving.lag, serving.next_help = 0.2, 0.0
    serving._ask_for_help_if_late(now=10.0)
    assert dispatched == []


def test_stopping_gives_back_what_is_ready_and_hands_over_the_work_left(serving, dispatched):
    serving.state.slots["r"] = slot("r", ready=3)
    serving.state.demands = {"r": demand("r")}
    serving._begin_stopping()
    assert serving.stopping and serving.report.handed_over
    assert sum(len(r.block_ids) for r in serving.state.releases) == 3
    assert serving.messages.wait(5)
    assert dispatched == ["host:1 handing over"]


def test_a_hand_over_waits_for_a_renewal_of_the_place_on_its_way(serving, dispatched):
    """A renewal answered after the place was given up would take it back from the next loop."""
    renewal = threading.Event()

    async def stop_while_a_renewal_is_on_its_way() -> None:
        serving.heartbeat = asyncio.create_task(asyncio.to_thread(renewal.wait, 5))
        serving.state.demands = {"r": demand("r")}
        serving._begin_stopping()
        assert not serving.report.handed_over
        renewal.set()
        await serving.heartbeat
        serving._hand_over_when_due()

    asyncio.run(stop_while_a_renewal_is_on_its_way())
    assert serving.messages.wait(5)
    assert serving.report.handed_over and dispatched == ["host:1 handing over"]


def test_stopping_with_no_work_left_hands_over_to_no_one(serving, dispatched):
    serving._begin_stopping()
    assert not serving.report.handed_over and dispatched == []


def test_a_loop_that_only_looks_for_work_ends_after_its_idle_time(serving):
    serving.next_refresh = 5.0  # it has looked at least once
    assert not serving._idle_for_long(now=10.0)
    assert not serving._idle_for_long(now=10.9)
    assert serving._idle_for_long(now=11.0)


def test_a_loop_serving_a_run_is_never_idle(serving):
    serving.next_refresh = 5.0
    serving.state.slots["r"] = slot("r")
    serving._idle_for_long(now=10.0)
    assert not serving._idle_for_long(now=100.0)


def test_a_stopping_loop_ends_only_once_nothing_is_left_to_write(serving):
    serving.state.stopping = True
    serving.state.writes.hold(slot("r").ctx, [object()], now=0.0)
    assert not serving._finished()
    serving.state.writes.take()
    assert serving._finished()


@pytest.fixture
def broker_hangs(monkeypatch) -> threading.Event:
    """Every message to the broker blocks until the event is set (Redis unreachable)."""
    answer = threading.Event()

    def dispatch(**kwargs: object) -> bool:
        answer.wait(30)
        return True

    monkeypatch.setattr(loop_module, "serve_dispatch_rollback_unsafe", dispatch)
    monkeypatch.setattr(loop_module, "serve_hand_over_rollback_unsafe", dispatch)
    yield answer
    answer.set()


def test_asking_for_help_never_waits_on_a_broker_that_does_not_answer(serving, broker_hangs):
    serving.lag, serving.next_help = 0.2, 0.0
    serving.state.demands = {"r": demand("r")}

    async def a_loop_asking_for_help_while_calls_end() -> int:
        ended = 0
        for turn in range(3):
            serving._ask_for_help_if_late(now=10.0 + turn * HELP_COOLDOWN_SECONDS)
            await asyncio.sleep(0)  # a call ends: the loop is free to see it
            ended += 1
        return ended

    assert asyncio.run(asyncio.wait_for(a_loop_asking_for_help_while_calls_end(), 5)) == 3
    assert serving.messages.busy  # the first request is still waiting on the broker, off the loop
    broker_hangs.set()
    assert serving.messages.wait(5)


def test_a_request_made_while_the_broker_has_not_answered_the_last_is_dropped(serving, broker_hangs):
    serving.lag, serving.next_help = 0.2, 0.0
    serving.state.demands = {"r": demand("r")}
    assert serving.messages.send("first", loop_module.serve_dispatch_rollback_unsafe)
    assert not serving.messages.send("second", loop_module.serve_dispatch_rollback_unsafe)


def test_an_ending_loop_does_not_wait_for_the_broker_longer_than_its_hand_over_wait(
        serving, broker_hangs, monkeypatch):
    monkeypatch.setattr(loop_module, "HAND_OVER_WAIT_SECONDS", 0.05)
    serving.state.demands = {"r": demand("r")}
    serving._begin_stopping()

    asyncio.run(asyncio.wait_for(serving.messages.settle(0.05), 5))
    assert serving.messages.busy


def registration_answers(monkeypatch, answer) -> None:
    def register(*, worker: str, ttl_seconds: float) -> bool:
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(loop_module, "server_register", register)


def test_a_loop_whose_place_is_refused_stops_gives_back_its_work_and_hands_over_to_no_one(
        serving, dispatched, monkeypatch):
    registration_answers(monkeypatch, False)
    serving.state.slots["r"] = slot("r", ready=3)
    serving.state.demands = {"r": demand("r")}

    asyncio.run(serving._register())
    serving._begin_stopping()  # the loop's next turn, as its stop event is set

    assert serving.stop.is_set() and serving.place_lost == "refused"
    assert sum(len(r.block_ids) for r in serving.state.releases) == 3
    assert serving.messages.wait(5)
    assert not serving.report.handed_over and dispatched == []


def test_a_loop_whose_place_is_granted_keeps_serving(serving, monkeypatch):
    registration_answers(monkeypatch, True)
    asyncio.run(serving._register())
    assert not serving.stop.is_set() and serving.place_lost is None


def test_a_loop_that_could_not_renew_its_place_for_its_whole_expiry_stops(serving, monkeypatch):
    import redis

    registration_answers(monkeypatch, redis.ConnectionError("unreachable"))
    asyncio.run(serving._register())
    assert not serving.stop.is_set()  # one missed renewal: the place is still ours

    serving.place_until = 0.0  # ... until its expiry passes

    async def heartbeat() -> None:
        serving._heartbeat()

    asyncio.run(heartbeat())
    assert serving.stop.is_set() and serving.place_lost == "expired"


def test_a_loop_whose_place_expired_hands_its_work_over(serving, dispatched):
    serving.state.demands = {"r": demand("r")}
    serving._lose_place("expired")
    serving._begin_stopping()
    assert serving.messages.wait(5)
    assert serving.report.handed_over and dispatched == ["host:1 handing over"]
