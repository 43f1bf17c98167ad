"""Lane-wide fair share: each owner's share of a lane from every process's uses of it."""

from apps.lanes.board import OwnerUse, Post, lane_concurrency, read_posts
from apps.runs.serving import lanewide
from tests.runs.serving.cast import slot, state_with


def uses(**owners: tuple[int, int, int]) -> dict[str, OwnerUse]:
    return {owner: OwnerUse(*numbers) for owner, numbers in owners.items()}


def test_owners_share_the_lane_equally():
    assert lanewide.lane_shares(30, {"a": 100, "b": 100, "c": 100}) == {"a": 10, "b": 10, "c": 10}


def test_an_owner_that_wants_less_leaves_the_rest_to_the_others():
    assert lanewide.lane_shares(30, {"a": 4, "b": 100, "c": 100}) == {"a": 4, "b": 13, "c": 13}


def test_an_owner_at_its_share_is_refused_while_another_waits_below_its_own():
    lane = uses(a=(10, 100, 5), b=(2, 100, 5), c=(10, 100, 5))
    assert lanewide.fair_room("a", lane, capacity=30, reserve=0.05) == 0
    assert lanewide.fair_room("b", lane, capacity=30, reserve=0.05) is None


def test_an_owner_may_exceed_its_share_while_nobody_else_wants_the_room():
    lane = uses(a=(25, 100, 5), b=(2, 2, 0))
    assert lanewide.fair_room("a", lane, capacity=30, reserve=0.05) is None


def test_a_saturated_lane_shares_the_most_it_held_lately():
    # The lane refuses (a rate limit binds at 12 calls): 12 shared by three is 4 each.
    lane = uses(a=(6, 100, 5), b=(4, 100, 5), c=(2, 100, 5))
    view = lanewide.LaneView(concurrency=30)
    capacity = lanewide.lane_capacity(view, lane, saturated=True, now=10.0)
    assert capacity == 12
    assert lanewide.fair_room("a", lane, capacity=capacity, reserve=0.05) == 0
    assert lanewide.fair_room("c", lane, capacity=capacity, reserve=0.05) is None
    # All calls ended at once: the lane still admits 12, not none.
    assert lanewide.lane_capacity(view, uses(a=(0, 100, 5)), saturated=True, now=10.5) == 12
    # Stale counts from other processes never make it more than the lane's useful concurrency.
    assert lanewide.lane_capacity(view, uses(a=(20, 100, 5), b=(20, 100, 5)), saturated=True, now=11) == 30


def test_a_saturated_lane_shares_no_more_than_its_limits_admit_at_its_latency():
    # Useful concurrency 30 is rate x latency x 1.25 of headroom: the limits admit 24 in flight, and a
    # peak of 28 (calls in flight swing above their mean; others' counts are a sync old) is not shared.
    view = lanewide.LaneView(concurrency=30, sustained=lanewide.sustained_concurrency(b"30"))
    assert view.sustained == 24
    assert lanewide.lane_capacity(view, uses(a=(14, 100, 5), b=(14, 100, 5)), saturated=True, now=10.0) == 24


def test_an_owner_a_fraction_below_its_share_is_starved_and_the_others_keep_their_share_rounded_up():
    # 31.5 shared by three is 10.5 each: "c" at 10 waits below it, so "a" may reach 11 and no more.
    lane = uses(a=(10, 100, 5), b=(11, 100, 5), c=(10, 100, 5))
    assert lanewide.fair_room("a", lane, capacity=31.5, reserve=0.05) == 1
    assert lanewide.fair_room("b", lane, capacity=31.5, reserve=0.05) == 0


def test_a_lane_with_room_shares_its_useful_concurrency():
    view = lanewide.LaneView(concurrency=300)
    assert lanewide.lane_capacity(view, uses(a=(6, 100, 5)), saturated=False, now=10.0) == 300


def test_an_owner_under_the_reserve_is_never_refused():
    # Share 5 each, but a reserve of 80% of the lane: "a" may still start two more.
    lane = uses(a=(6, 100, 5), b=(0, 100, 5))
    assert lanewide.fair_room("a", lane, capacity=10, reserve=0.8) == 2


def test_a_process_posts_what_each_owner_holds_could_use_and_has_not_started():
    state = state_with(slot("a1", owner_id=1, ready=3, in_flight=2), slot("a2", owner_id=1, in_flight=1),
                       slot("b1", owner_id=2, parallelism=4, ready=2))
    mine = lanewide.my_uses(state)["1:haiku"]
    assert mine["1"] == OwnerUse(held=3, demand=20, waiting=17)
    assert mine["2"] == OwnerUse(held=0, demand=4, waiting=4)


def test_a_dead_processs_post_expires_and_a_live_one_is_read_back():
    live = Post(worker="host:1", expires_ms=2000, owners=uses(a=(3, 10, 1)), saturated=True)
    dead = Post(worker="host:2", expires_ms=500, owners=uses(b=(9, 9, 0)))
    posts, expired = read_posts({b"host:1": live.encode(), b"host:2": dead.encode()}, now_ms=1000)
    assert posts == [live] and expired == ["host:2"]


def test_a_lanes_concurrency_is_its_useful_concurrency_else_its_window():
    assert lane_concurrency(b"1000.5", b"256", 4) == 1000.5
    assert lane_concurrency(None, b"256", 4) == 256
    assert lane_concurrency(None, None, 4) == 4
