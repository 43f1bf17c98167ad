"""The serving loop: one per worker process, serving every active run at once.

- context.py   what the loop knows about a run and its key (loaded once per run, refreshed on change)
- fairshare.py who gets the next free slot: owners equal, runs by priority, waiting work first
- calls.py     one pack of blocks through the provider, gated by its lane, split when it must be
- server.py    the loop: claims ahead, starts calls as slots and lanes allow, writes results behind
"""
