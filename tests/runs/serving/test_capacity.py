"""The process's ceiling by Little's law: the lanes' concurrency, bounded by the host."""

import resource

from apps.lanes.gate import LaneRef
from apps.lanes.limits import Limits
from apps.runs.serving import capacity, process
from apps.runs.serving.calls import ClientPool
from tests.runs.serving.cast import context


def test_a_process_serves_as_many_calls_as_its_lanes_can_use():
    ceiling = capacity.process_ceiling([1000.0, 83.4], operator=None, open_files=20_000)
    assert (ceiling.calls, ceiling.bound_by, ceiling.host_bound) == (1084, capacity.LANES, False)


def test_an_operators_bound_applies_on_top_and_says_so():
    ceiling = capacity.process_ceiling([1000.0], operator=256, open_files=20_000)
    assert (ceiling.calls, ceiling.bound_by, ceiling.host_bound) == (256, capacity.OPERATOR, True)


def test_the_open_files_bound_the_ceiling_when_the_lanes_want_more():
    ceiling = capacity.process_ceiling([5000.0], operator=None, open_files=768)
    assert (ceiling.calls, ceiling.bound_by) == (768, capacity.OPEN_FILES)


def test_a_fresh_lane_starts_with_its_window_once_its_limits_are_known_else_cautiously():
    known = capacity.default_concurrency(Limits(rpm=4000), initial_window=4, window_after_headers=256)
    unknown = capacity.default_concurrency(Limits(), initial_window=4, window_after_headers=256)
    assert (known, unknown) == (256, 4)


def test_each_key_needs_its_lanes_calls_within_the_ceiling():
    lanes = {LaneRef(1, "haiku"): 600.0, LaneRef(1, "sonnet"): 500.0, LaneRef(2, "haiku"): 40.2}
    assert capacity.calls_per_key(lanes, ceiling=1000) == {1: 1000, 2: 41}


def test_the_soft_open_files_limit_is_raised_to_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        raised = process.raise_open_files_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised
        assert process.open_files_capacity() == raised - process.OPEN_FILES_RESERVE
        if hard != resource.RLIM_INFINITY:
            assert raised == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_keys_clients_hold_its_calls_and_are_replaced_when_it_needs_more():
    pool = ClientPool()
    pool.size(1, 1000)
    assert pool.connections_per_client(1) * pool.SHARDS >= 1000
    first = pool.get(context("r"))
    pool._turn = iter([0, 0])  # the same client's turn again
    assert pool.get(context("r")) is first
    pool.size(1, 4000)
    assert pool.get(context("r")) is not first
    assert pool._retired == [first]
