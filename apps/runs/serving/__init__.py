"""The serving loop: one per worker process, serving every active run at once.

- loop.py      the loop's life: its slice, its serving place, asking for help, stopping; its turn
- starting.py  starting calls: fair-share order, pacing, what a lane's refusal means
- rounds.py    database rounds: collect what needs PostgreSQL, run it in one thread, apply the result
- slots.py     what the loop holds: a slot per run and per lane, results waiting to be written
- fairshare.py who gets the next free slot: owners equal, runs by priority, waiting work first
- calls.py     one pack of blocks through the provider, gated by its lane, split when it must be
- context.py   what the loop knows about a run and its key (loaded once per run, refreshed on change)
- process.py   what a process does once before it serves
- messages.py  help requests and hand-overs, sent to the broker from a thread of their own
"""
