"""PostgreSQL connection options every process uses (web, workers, beat, tests).

A host cut off from the network leaves its connections open on the server's side: without help the
server notices only when the operating system gives up on them (hours), and a transaction they
left open keeps its row locks (a block's claim, a run's counters) and holds back vacuum all that time.
- TCP keepalives (libpq's keepalives_idle / interval / count) on both ends' sockets: a peer that
  stopped answering is dropped after about DATABASE_DEAD_PEER_SECONDS (idle for a third of it,
  then probes a sixth of it apart, three missed probes: dead). The client side learns the same
  and fails the query instead of waiting forever.
- idle_in_transaction_session_timeout: the server ends any session that sits in an open transaction,
  doing nothing, for DATABASE_IDLE_IN_TRANSACTION_SECONDS (our transactions are short: a claim or
  a batch of result writes, never a provider call), so its locks are let go whatever the network does.
0 turns either off."""

from typing import Any

import environ


def postgres_options(env: environ.Env, *, prefix: str = "") -> dict[str, Any]:
    """The options from DATABASE_CONNECT_TIMEOUT, DATABASE_DEAD_PEER_SECONDS and
    DATABASE_IDLE_IN_TRANSACTION_SECONDS (each read with `prefix`: the tests' TEST_ names)."""
    options: dict[str, Any] = {"connect_timeout": env.int(f"{prefix}DATABASE_CONNECT_TIMEOUT", default=5)}
    dead_peer = env.int(f"{prefix}DATABASE_DEAD_PEER_SECONDS", default=30)
    if dead_peer > 0:
        idle = max(1, dead_peer // 3)
        interval = max(1, (dead_peer - idle) // 3)
        options.update(keepalives=1, keepalives_idle=idle, keepalives_interval=interval,
                       keepalives_count=3)
    idle_in_transaction = env.int(f"{prefix}DATABASE_IDLE_IN_TRANSACTION_SECONDS", default=60)
    if idle_in_transaction > 0:
        options["options"] = f"-c idle_in_transaction_session_timeout={idle_in_transaction * 1000}"
    return options
