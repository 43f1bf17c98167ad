"""The read side of runs, for people: what a run cost and what caching, packing and batch mode saved
(costs.py), two runs side by side (compare.py), a run's live progress (live.py: the snapshot behind the
event stream and the admin's live row) and following it on a terminal (progress.py). Nothing here
writes; the engine's own reads are apps/runs/selectors.py."""
