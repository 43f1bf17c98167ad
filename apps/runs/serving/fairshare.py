"""Fair share of a worker's slots: when capacity is short, owners get equal shares and each owner's
runs share theirs by weight (`priority`); a run never gets more than it can use, and what one does
not use goes to the others (max-min fairness, by progressive filling). Pure functions: the serving
loop feeds them what it holds and what each run could still use."""

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from apps.core.ids import RunId

EPSILON = 1e-9
# Whatever is shared out: owners, runs.
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Contender:
    run_id: RunId
    owner_id: Hashable
    weight: float
    # Blocks of this run this process holds now (in calls, or claimed and ready to start).
    held: int
    # How many blocks this run could hold here at most right now (its parallelism, less what other
    # processes hold, and no more than it has work for).
    demand: int
    # When the run last got a call started (older first among equals: waiting work ages).
    waiting_since: float


def waterfill(total: float, demands: dict[K, float], weights: dict[K, float]) -> dict[K, float]:
    """Split `total` so that each gets weight * level, capped at its demand, with the level as high
    as `total` allows; what a capped one leaves goes to the rest."""
    alloc = dict.fromkeys(demands, 0.0)
    active = {k for k, d in demands.items() if d > EPSILON and weights.get(k, 0) > 0}
    remaining = float(total)
    while active and remaining > EPSILON:
        weight_sum = sum(weights[k] for k in active)
        level = remaining / weight_sum
        capped = [k for k in active if demands[k] - alloc[k] <= level * weights[k] + EPSILON]
        if not capped:
            for k in active:
                alloc[k] += level * weights[k]
            break
        for k in capped:
            remaining -= demands[k] - alloc[k]
            alloc[k] = float(demands[k])
            active.discard(k)
    return alloc


def targets(total: int, contenders: Iterable[Contender]) -> dict[Hashable, float]:
    """Each run's fair number of slots out of `total`: owners first, then runs within an owner."""
    contenders = list(contenders)
    by_owner: dict[Hashable, list[Contender]] = {}
    for c in contenders:
        by_owner.setdefault(c.owner_id, []).append(c)
    owner_demand = {owner: float(sum(c.demand for c in runs)) for owner, runs in by_owner.items()}
    owner_share = waterfill(total, owner_demand, dict.fromkeys(by_owner, 1.0))
    result: dict[Hashable, float] = {}
    for owner, runs in by_owner.items():
        result.update(waterfill(owner_share[owner], {c.run_id: float(c.demand) for c in runs},
                                {c.run_id: max(c.weight, EPSILON) for c in runs}))
    return result


def order(contenders: Iterable[Contender], shares: dict[Hashable, float]) -> list[Contender]:
    """Who should get the next slot: the furthest below its share (relative to it), then the one
    that has waited longest."""
    def key(c: Contender) -> tuple[float, float]:
        share = shares.get(c.run_id, 0.0)
        deficit = (share - c.held) / share if share > EPSILON else -1.0
        return (-deficit, c.waiting_since)

    return sorted((c for c in contenders if shares.get(c.run_id, 0.0) - c.held > EPSILON), key=key)
