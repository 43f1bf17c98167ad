"""What a lane learned survives Redis: the gate keeps it in PostgreSQL (LaneMemory) and seeds a lane
Redis lost from it, so a restart, a new host or a flush does not start again with a few calls; the
next headers correct a memory that went stale."""

import pytest
import redis
from django.conf import settings

from apps.lanes.gate import Grant, LaneGate
from apps.lanes.memory import recall_in_thread
from apps.lanes.models import LaneMemory
from tests.lanes.cast import LANE, NOW, acquire_many, headers, lane_field, run, settle_ok

# The gate writes from a thread of its own: the rows must be committed for it to see them.
pytestmark = pytest.mark.django_db(transaction=True)

TIER_4_AT_15S = headers(rpm=4000, rpm_left=3999)


def flush_redis() -> None:
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # this suite's own db only


def learn(answer=TIER_4_AT_15S, latency: float = 15.0, now: float = NOW) -> None:
    async def body(gate: LaneGate) -> None:
        [grant] = await acquire_many(gate, 1, now=now)
        await settle_ok(gate, grant, now=now + latency, latency=latency, answer=answer)

    run(body, remember=True)


def test_what_a_lane_learned_is_kept_in_postgresql():
    learn()
    memory = LaneMemory.objects.get(key_id=LANE.key_id, group=LANE.group)
    assert (memory.rpm_limit, memory.latency_ms) == (4000, 15000)
    assert memory.useful_concurrency > 1000
    assert memory.window == memory.useful_concurrency


def test_after_a_redis_flush_the_lane_starts_from_its_learned_window_not_the_cautious_one():
    learn()
    flush_redis()

    async def body(gate: LaneGate) -> tuple[int, float | None, float | None]:
        started = len(await acquire_many(gate, 100, now=NOW + 3600))
        return started, await lane_field(gate, "cwnd"), await lane_field(gate, "lim_r")

    started, window, rpm = run(body, remember=True)
    remembered = LaneMemory.objects.get(key_id=LANE.key_id, group=LANE.group)
    assert window == remembered.window > settings.CONVEYOR["LANE_INITIAL_WINDOW"]
    # The buckets know the limit again: a burst of it, not the 4 calls of a cautious start.
    assert rpm == 4000
    assert started == int(4000 * settings.CONVEYOR["LANE_BURST_SECONDS"] / 60)


def test_a_call_that_ends_after_the_flush_does_not_keep_the_lane_from_its_memory():
    learn()

    async def in_flight(gate: LaneGate) -> Grant:
        [grant] = await acquire_many(gate, 1, now=NOW + 100)
        return grant

    grant = run(in_flight, remember=True)
    flush_redis()

    async def body(gate: LaneGate) -> float | None:
        await settle_ok(gate, grant, now=NOW + 110, latency=10.0)  # no headers: a 400, say
        await acquire_many(gate, 1, now=NOW + 111)
        return await lane_field(gate, "cwnd")

    remembered = LaneMemory.objects.get(key_id=LANE.key_id, group=LANE.group)
    assert run(body, remember=True) == remembered.window > 1000
    # ...and what that settle saw (no limits, the window of a fresh hash) did not overwrite it.
    assert LaneMemory.objects.get(key_id=LANE.key_id, group=LANE.group).rpm_limit == 4000


def test_a_lane_nothing_is_remembered_of_starts_cautiously():
    async def body(gate: LaneGate) -> int:
        return len(await acquire_many(gate, 100))

    assert run(body, remember=True) == settings.CONVEYOR["LANE_INITIAL_WINDOW"]


def test_new_headers_overwrite_a_stale_memory():
    LaneMemory.objects.create(key_id=LANE.key_id, group=LANE.group, rpm_limit=4000, latency_ms=15000,
                              window=1225, useful_concurrency=1225)
    learn(answer=headers(rpm=1000, rpm_left=999), latency=15.0)

    async def lane_limit(gate: LaneGate) -> float | None:
        return await lane_field(gate, "lim_r")

    assert run(lane_limit) == 1000
    memory = LaneMemory.objects.get(key_id=LANE.key_id, group=LANE.group)
    assert memory.rpm_limit == 1000
    assert memory.useful_concurrency < 1225


def test_a_process_writes_a_lane_at_most_every_remember_seconds():
    every = settings.CONVEYOR["LANE_REMEMBER_SECONDS"]

    async def body(gate: LaneGate) -> list[int]:
        seen = []
        for offset, rpm in ((0, 4000), (1, 3000), (every + 1, 2000)):
            [grant] = await acquire_many(gate, 1, now=NOW + offset)
            await settle_ok(gate, grant, now=NOW + offset, latency=1.0, answer=headers(rpm=rpm, rpm_left=1))
            await gate.remembered()
            seen.append(await _remembered_rpm())
        return seen

    assert run(body, remember=True) == [4000, 4000, 2000]


async def _remembered_rpm() -> int:
    memory = await recall_in_thread(LANE)
    return memory.rpm
