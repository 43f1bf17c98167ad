"""A small cast for the serving loop's decisions, built in memory (no database, no Redis)."""

import time
import uuid
from typing import Any

from apps.lanes.gate import LaneRef
from apps.lanes.limits import Limits
from apps.providers.prompts import CallSpec
from apps.runs.services.claiming import Claim, ClaimedBlock
from apps.runs.serving.context import Demand, RunContext
from apps.runs.serving.slots import LoopState, Pack, RunSlot

SPEC = CallSpec(model="claude-haiku-4-5", system_prompt="", prompt_template="{input}", max_tokens=64)


def context(run_id: Any, *, owner_id: int = 1, pack_size: int = 1, key_id: int = 1, key_revision: int = 1,
            current_pass: int = 1) -> RunContext:
    return RunContext(run_id=run_id, owner_id=owner_id, key_id=key_id, key_revision=key_revision,
                      current_pass=current_pass, spec=SPEC, pack_size=pack_size,
                      lane=LaneRef(key_id=key_id, group="haiku"), limits=Limits(), api_key="sk-test",
                      base_url="http://127.0.0.1:1")


def demand(run_id: Any, *, owner_id: int = 1, parallelism: int = 10, priority: int = 1, claimed: int = 0,
           current_pass: int = 1, key_revision: int = 1, cache_warmed: bool = True) -> Demand:
    return Demand(run_id=run_id, owner_id=owner_id, key_id=1, key_revision=key_revision,
                  current_pass=current_pass, parallelism=parallelism, priority=priority, claimed=claimed,
                  cache_warmed=cache_warmed)


def blocks(n: int, *, first_id: int = 1) -> list[ClaimedBlock]:
    return [ClaimedBlock(id=i, uid=f"b{i}", input="text", attempt=1) for i in range(first_id, first_id + n)]


def claim(n: int, *, status: str = "running", budget_wait: bool = False, at_parallelism: bool = False
          ) -> Claim:
    return Claim(run_status=status, blocks=blocks(n), lease_token=uuid.uuid4(), budget_wait=budget_wait,
                 at_parallelism=at_parallelism)


def state_with(*slots: RunSlot, ceiling: int = 100) -> LoopState:
    state = LoopState(ceiling=ceiling)
    for slot in slots:
        state.slots[slot.run_id] = slot
    return state


def slot(run_id: Any, *, owner_id: int = 1, parallelism: int = 10, pack_size: int = 1, ready: int = 0,
         start_by: float = float("inf"), **fields: Any) -> RunSlot:
    result = RunSlot(ctx=context(run_id, owner_id=owner_id, pack_size=pack_size),
                     demand=demand(run_id, owner_id=owner_id, parallelism=parallelism),
                     waiting_since=time.monotonic(), **fields)
    for i in range(0, ready, pack_size):
        result.ready.append(Pack(blocks=blocks(pack_size, first_id=1000 + i), token=uuid.uuid4(),
                                 start_by=start_by))
    return result
