"""The serving loop's life, without the database: asking for help, stopping, ending when idle."""

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

    monkeypatch.setattr(loop_module, "serve_dispatch_rollback_unsafe", dispatch)
    return reasons


@pytest.fixture
def serving(settings) -> ServingLoop:
    settings.CONVEYOR = {**settings.CONVEYOR, "SERVE_HELP_LAG_SECONDS": 0.05}
    return ServingLoop(worker="host:1", slice_seconds=60, idle_exit_seconds=1.0, refresh_seconds=0.2)


def test_a_late_loop_with_work_asks_for_help_once_per_cooldown(serving, dispatched):
    serving.lag, serving.next_help = 0.2, 0.0
    serving.state.demands = {"r": demand("r")}
    serving._ask_for_help_if_late(now=10.0)
    serving._ask_for_help_if_late(now=11.0)
    serving._ask_for_help_if_late(now=10.0 + HELP_COOLDOWN_SECONDS)
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
    assert dispatched == ["host:1 handing over"]


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
