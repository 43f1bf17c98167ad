"""Following a run from the command line: a progress bar until it ends, then a summary."""

import time
from typing import Any, TextIO

from tqdm import tqdm

from apps.runs.models import Run
from apps.runs.transitions import RUN_SETTLED


def follow_run(run_id: Any, *, out: TextIO, poll_seconds: float = 0.5,
               stop_when: tuple[str, ...] = RUN_SETTLED) -> Run:
    run = Run.objects.get(pk=run_id)
    with tqdm(total=run.total_blocks, unit="block", file=out, dynamic_ncols=True) as bar:
        while True:
            run.refresh_from_db()
            bar.n = run.terminal_blocks
            bar.set_postfix(status=run.status, failed=run.failed_blocks, cost=f"${run.cost_usd:.4f}")
            bar.refresh()
            if run.status in stop_when:
                return run
            time.sleep(poll_seconds)


def summary(run: Run) -> str:
    duration = (
        (run.finished_at - run.started_at).total_seconds()
        if run.finished_at and run.started_at else None
    )
    lines = [
        f"run {run.pk}: {run.status}" + (f" ({run.paused_reason})" if run.paused_reason else ""),
        f"  blocks     {run.total_blocks} total, {run.completed_blocks} succeeded, "
        f"{run.failed_blocks} failed, {run.canceled_blocks} canceled",
        f"  tokens     {run.input_tokens} in, {run.output_tokens} out, "
        f"{run.cache_creation_input_tokens} cache write, {run.cache_read_input_tokens} cache read",
        f"  cost       ${run.cost_usd:.6f} ({run.model})",
        f"  calls      {run.attempts.count()} provider calls "
        f"({run.attempts.exclude(outcome='succeeded').count()} retried or failed)",
    ]
    if duration:
        lines.append(f"  time       {duration:.1f}s, {run.terminal_blocks / duration:.1f} blocks/s")
    return "\n".join(lines)
