"""A run's pool of keys (issue 22): which key's lane a pack of blocks asks first.

A run may call with several keys of its owner; each key has its own lane (its own rate limits,
window and 429 hold), so the run can reach the sum of their limits. A pack asks the pool's routes
(`RunContext.routes_for(model_index)`: one per active key, for the model its blocks are on) in the
order `candidates` gives, and what one lane refuses goes on to the next in the same turn
(starting.py): the lanes' own refusals are what spread the calls by the room each has.

The order:
- keys refused during a call (401/403, an unsafe address) are skipped at once (`keys_out`), before
  the write takes them out of the pool in the database;
- lanes shut for a while (a 429 hold, overload, an empty bucket) are skipped;
- with caching on, a key whose workspace's cache already holds the run's prefix comes first (the
  cache is per workspace: a call on a cold key writes the prefix again). A cold key gets one call
  at a time until one has answered (`warming`), so each key writes the prefix once, not once per
  call in flight;
- then the least loaded: this loop's calls on the key over the lane's useful concurrency (as the
  boards last said), so keys fill evenly rather than the first to its limit before the second.
"""

from apps.lanes.gate import LaneRef
from apps.runs.serving.context import RunContext
from apps.runs.serving.slots import LaneSlot, LoopState, Pack, RunSlot


def routes_of(slot: RunSlot) -> list[RunContext]:
    """Every route of the run (each key, each model)."""
    if not slot.ctx.routes:
        return [slot.ctx]
    return [route for routes in slot.ctx.routes for route in routes]


def lanes_of(slot: RunSlot) -> list[RunContext]:
    """One route per lane the run may call on (the lane's limits are the same for each model of
    its group)."""
    seen: dict[str, RunContext] = {}
    for route in routes_of(slot):
        seen.setdefault(route.lane.name, route)
    return list(seen.values())


def uses_lane(slot: RunSlot, lane: LaneRef) -> bool:
    return any(route.lane == lane for route in routes_of(slot))


def _closed_for(state: LoopState, route: RunContext, now: float) -> float:
    lane = state.lanes.get(route.lane.name)
    return 0.0 if lane is None else lane.closed_until - now


def all_closed(state: LoopState, slot: RunSlot, now: float, *, longer_than: float = 0.0) -> bool:
    """No lane of the run's usable keys opens within `longer_than` seconds (or every key is out)."""
    usable = [r for r in routes_of(slot) if r.key_id not in slot.keys_out]
    return not usable or all(_closed_for(state, r, now) > longer_than for r in usable)


def candidates(
    state: LoopState, slot: RunSlot, model_index: int, now: float, concurrency: dict[str, float] | None = None
) -> list[RunContext]:
    """The routes a pack on this model may ask, best first (see the module's docstring)."""
    caching = slot.ctx.spec.cache
    open_routes = []
    for position, route in enumerate(slot.ctx.routes_for(model_index)):
        if route.key_id in slot.keys_out or _closed_for(state, route, now) > 0:
            continue
        cold = caching and route.key_id not in slot.warm
        if cold and route.key_id in slot.warming:
            continue  # its first call is out: the prefix is being written, wait for it
        useful = (concurrency or {}).get(route.lane.name, 0.0)
        load = slot.key_in_flight[route.key_id] / useful if useful > 0 else slot.key_in_flight[route.key_id]
        open_routes.append(((cold, load, position), route))
    open_routes.sort(key=lambda item: item[0])
    return [route for _, route in open_routes]


def assign(
    slot: RunSlot, routes: list[RunContext], packs: list[Pack], concurrency: dict[str, float] | None = None
) -> list[tuple[RunContext, list[Pack]]]:
    """The packs shared out over the warm routes (all of them, when caching is off) by the room each
    has: each pack to the route whose load (calls of this run on its key, with those assigned here,
    over its lane's useful concurrency) would be lowest. Cold routes are left for what the warm
    ones refuse (starting.py offers them the rest, one pack each)."""
    warm = [route for route in routes if not is_cold(slot, route)]
    if len(warm) <= 1:  # (a run on one key: no sharing to do)
        return [(warm[0], packs)] if warm else []
    assigned: dict[int, list[Pack]] = {route.key_id: [] for route in warm}
    load = {route.key_id: float(slot.key_in_flight[route.key_id]) for route in warm}
    room = {route.key_id: max((concurrency or {}).get(route.lane.name, 0.0), 1.0) for route in warm}
    for pack in packs:
        best = min(warm, key=lambda r: ((load[r.key_id] + pack.size) / room[r.key_id], routes.index(r)))
        assigned[best.key_id].append(pack)
        load[best.key_id] += pack.size
    return [(route, assigned[route.key_id]) for route in warm if assigned[route.key_id]]


def is_cold(slot: RunSlot, route: RunContext) -> bool:
    """A call on this key would write the run's prefix into its workspace's cache first."""
    return slot.ctx.spec.cache and route.key_id not in slot.warm


def pace_lane(state: LoopState, slot: RunSlot) -> LaneSlot:
    """The lane whose latency paces the run's starts: the first of its lanes that has measured one."""
    for route in lanes_of(slot):
        lane = state.lanes.get(route.lane.name)
        if lane is not None and lane.latency > 0:
            return lane
    return state.lane_of(slot)


def call_ended(slot: RunSlot, route: RunContext, blocks: int, *, answered: bool, key_refused: bool) -> None:
    slot.key_in_flight[route.key_id] -= blocks
    slot.warming.discard(route.key_id)
    if answered:
        slot.warm.add(route.key_id)
    if key_refused:
        slot.keys_out.add(route.key_id)
