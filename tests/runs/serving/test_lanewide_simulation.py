"""Lane-wide fair share, simulated: two serving loops' call starters (the real CallStarter, LoopState
and lane boards in the real Redis) on one key whose window holds 12 calls, a gate and a provider
faked in memory. One loop serves two owners' runs, the other a third owner's run. With the boards,
each owner gets a third of the key's calls. (Without them, each loop sharing only its own slots, the
shares came out 120/120/0 or 84/84/72 depending on which loop polled first: a control too dependent on
scheduling to be a test, so it is only `simulate(boards=False)` to try by hand; the e2e
tests/e2e/test_fair_hosts.py measures both with real workers.)"""

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from apps.core.redis import async_broker_redis
from apps.lanes.gate import Grant
from apps.runs.serving import lanewide
from apps.runs.serving.lanewide import LaneBoard
from apps.runs.serving.slots import LoopState, Pack
from apps.runs.serving.starting import CallStarter
from tests.runs.serving.cast import blocks, slot

WINDOW = 12
LATENCY = 0.3
SECONDS = 7.0


class WindowGate:
    """A lane that admits WINDOW calls at once, shared by both loops."""

    def __init__(self) -> None:
        self.in_flight = 0

    async def try_acquire_many(self, lane: Any, *, needs: list[Any], **_: Any) -> list[Grant]:
        grants = []
        for _need in needs:
            if self.in_flight >= WINDOW:
                grants.append(Grant(False, uuid.uuid4().hex, 0.0, "window"))
                break
            self.in_flight += 1
            grants.append(Grant(True, uuid.uuid4().hex))
        return grants


class Provider:
    def __init__(self, gate: WindowGate, *, count_after: float) -> None:
        self.gate = gate
        self.count_after = count_after
        self.calls: Counter[int] = Counter()

    async def call(self, ctx: Any, blocks: Any, token: Any, grant: Any, need: Any) -> list[Any]:
        if time.monotonic() >= self.count_after:  # after the first second's ramp
            self.calls[ctx.owner_id] += 1
        await asyncio.sleep(LATENCY)
        self.gate.in_flight -= 1
        return []


class NoSettlements:
    def __bool__(self) -> bool:
        return False


async def serve(state: LoopState, starter: CallStarter, board: LaneBoard | None, worker: str,
                until: float) -> None:
    """A serving loop's turn, reduced to what shares the lane: keep every run's packs ready (its
    claims), post on the boards and read them, start calls."""
    while time.monotonic() < until:
        for run in state.slots.values():
            while len(run.ready) < 20:
                run.ready.append(Pack(blocks=blocks(1), token=uuid.uuid4()))
        if board is not None and board.due(time.monotonic()):
            await board.sync(lanewide.posts_of(state, worker=worker, now=time.monotonic(),
                                               expires_ms=int((time.time() + 2) * 1000)), time.monotonic())
        await starter.start_calls()
        starter.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(starter.wake.wait(), timeout=0.01)


async def simulate(*, boards: bool) -> Counter[int]:
    gate = WindowGate()
    provider = Provider(gate, count_after=time.monotonic() + 1.0)
    redis_client = async_broker_redis()
    await redis_client.hset("conveyor:lane:1:haiku", "useful", WINDOW)  # what the lane measured
    loops = []
    for worker, owners in (("host-1:1", (1, 2)), ("host-2:1", (3,))):
        state = LoopState(ceiling=100, ceiling_by="lanes")
        for owner in owners:
            run = slot(f"run-{owner}", owner_id=owner, parallelism=100)
            state.slots[run.run_id] = run
        # Synced every 5 ms: the calls take 0.3 s, not the seconds real calls take (see lanewide.py).
        board = (LaneBoard(redis_client, worker=worker, ttl_seconds=2.0, sync_seconds=0.005)
                 if boards else None)
        starter = CallStarter(state=state, gate=gate, caller=provider, settlements=NoSettlements(),
                              wake=asyncio.Event(), board=board)
        loops.append((state, starter, board, worker))
    until = time.monotonic() + SECONDS
    await asyncio.gather(*(serve(*loop, until=until) for loop in loops))
    await asyncio.sleep(LATENCY * 2)
    for _state, _starter, board, _worker in loops:
        if board is not None:
            await board.withdraw()
    await redis_client.aclose()
    return provider.calls


def shares(calls: Counter[int]) -> dict[int, float]:
    total = sum(calls.values())
    return {owner: calls[owner] / total for owner in (1, 2, 3)}


@pytest.fixture(autouse=True)
def clean_boards():
    from apps.core.redis import broker_redis
    client = broker_redis()
    for key in [*client.scan_iter(match="conveyor:lane-board:*"), "conveyor:lane:1:haiku"]:
        client.delete(key)


def test_three_owners_on_one_key_get_equal_shares_across_two_loops():
    """Within a quarter of a third each: both loops share one event loop here, polling every 10 ms,
    so the shares move with the machine's load (76/80/72 alone, 88/72/72 beside the rest of the
    suite); without the boards the owner alone on its loop gets as much as the other two together or
    nothing (120/120/0). The issue's 10% is measured with real workers: tests/e2e/test_fair_hosts.py."""
    calls = asyncio.run(simulate(boards=True))
    assert sum(calls.values()) > 150
    for owner, share in shares(calls).items():
        assert abs(share - 1 / 3) <= 0.25 / 3, (owner, calls)
