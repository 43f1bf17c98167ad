import asyncio
import threading
from typing import Any

from apps.runs.models import Run
from apps.runs.serving.loop import ServeReport, ServingLoop
from apps.runs.transitions import RUN_SETTLED


def serve(*, slice_seconds: float = 20.0, worker: str = "test-worker", idle_exit_seconds: float = 0.3
          ) -> ServeReport:
    """Run one serving loop in this process, as a worker would, until its slice ends or it has had
    nothing to do for `idle_exit_seconds`."""
    loop = ServingLoop(worker=worker, slice_seconds=slice_seconds, idle_exit_seconds=idle_exit_seconds)
    return asyncio.run(loop.run())


def serve_until_settled(run: Run, *, rounds: int = 10, **options: Any) -> Run:
    """Serve until the run is complete, canceled or paused (each round ends when the loop idles,
    e.g. while the run's retries wait)."""
    for _ in range(rounds):
        serve(**options)
        run.refresh_from_db()
        if run.status in RUN_SETTLED:
            break
    return run


def in_thread(target: Any, *args: Any, **kwargs: Any) -> threading.Thread:
    from django.db import connection

    def body() -> None:
        try:
            target(*args, **kwargs)
        finally:
            connection.close()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread
