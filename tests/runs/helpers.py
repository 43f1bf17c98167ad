import asyncio
import threading
from typing import Any

from apps.runs.models import Run
from apps.runs.services.drain import DrainResult, drain_run

ENDED = ("complete", "canceled", "paused")


def drain(run: Run, *, slice_seconds: float = 20.0, worker: str = "test-worker") -> DrainResult:
    """Run one drain of the run in this process, as a worker would."""
    return asyncio.run(drain_run(run.pk, slice_seconds=slice_seconds, worker=worker))


def drain_until_settled(run: Run, *, rounds: int = 10) -> Run:
    for _ in range(rounds):
        drain(run)
        run.refresh_from_db()
        if run.status in ENDED:
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
