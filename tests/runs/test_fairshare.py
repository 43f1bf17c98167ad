"""Fair share of a worker's slots: owners equal, runs by priority within an owner, nobody more than
it can use, the furthest behind first."""

from apps.runs.serving.fairshare import Contender, order, targets


def contender(run: str, owner: str, *, demand: int, weight: float = 5, held: int = 0,
              waiting_since: float = 0.0) -> Contender:
    return Contender(run_id=run, owner_id=owner, weight=weight, held=held, demand=demand,
                     waiting_since=waiting_since)


def test_owners_get_equal_shares_whatever_their_number_of_runs():
    shares = targets(90, [contender("a1", "alice", demand=100), contender("a2", "alice", demand=100),
                          contender("a3", "alice", demand=100), contender("b1", "bob", demand=100)])
    assert shares["b1"] == 45
    assert shares["a1"] + shares["a2"] + shares["a3"] == 45


def test_an_owners_runs_share_by_priority():
    shares = targets(30, [contender("urgent", "alice", demand=100, weight=10),
                          contender("routine", "alice", demand=100, weight=5)])
    assert (shares["urgent"], shares["routine"]) == (20, 10)


def test_what_a_small_run_cannot_use_goes_to_the_others():
    shares = targets(100, [contender("small", "alice", demand=4), contender("big", "bob", demand=500)])
    assert (shares["small"], shares["big"]) == (4, 96)


def test_nobody_gets_more_than_there_is_or_more_than_it_asks_for():
    shares = targets(10, [contender("a", "alice", demand=3), contender("b", "bob", demand=3)])
    assert (shares["a"], shares["b"]) == (3, 3)


def test_the_run_furthest_below_its_share_goes_first_then_the_one_waiting_longest():
    contenders = [contender("busy", "alice", demand=50, held=40, waiting_since=1.0),
                  contender("starved", "bob", demand=50, held=0, waiting_since=5.0),
                  contender("also-starved", "carol", demand=50, held=0, waiting_since=2.0)]
    shares = targets(60, contenders)
    # "busy" holds more than its share of 20: it is not offered a slot until the others catch up.
    assert [c.run_id for c in order(contenders, shares)] == ["also-starved", "starved"]


def test_a_run_at_its_share_is_not_offered_another_slot():
    contenders = [contender("full", "alice", demand=50, held=30), contender("other", "bob", demand=50)]
    assert [c.run_id for c in order(contenders, targets(60, contenders))] == ["other"]
