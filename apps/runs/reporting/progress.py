"""Following a run from the command line: a progress bar until it settles, then a summary.

One implementation for `manage.py submit --follow`, `manage.py runs follow` and the demo, showing the
snapshot the live progress stream sends (live.py, GET /api/v1/runs/{id}/events/). Log lines and
warnings printed while the bar is on screen go through tqdm (above the bar, not through it); Ctrl-C
detaches, saying that the run goes on and how to follow it again.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from django.db.models import Count
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from apps.core.formatting import format_usd
from apps.core.ids import RunId
from apps.runs.estimates import RunEstimate
from apps.runs.models import Block, BlockStatus, Run, RunStatus
from apps.runs.reporting.costs import CostReport, run_cost_report
from apps.runs.reporting.live import run_progress
from apps.runs.selectors import run_call_counts, run_status_text, run_waiting_reason
from apps.runs.transitions import RUN_SETTLED

# How the commands are spelled everywhere a hint names one (the README's spelling).
MANAGE = "uv run python manage.py"
TOP_ERROR_CODES = 3


@dataclass(frozen=True)
class Followed:
    run: Run
    # True when the person pressed Ctrl-C: the run was left as it was, not waited for.
    detached: bool = False


def follow_command(run_id: RunId) -> str:
    return f"{MANAGE} runs follow {run_id}"


def export_command(run_id: RunId) -> str:
    return f"{MANAGE} export {run_id} > results.jsonl"


@contextmanager
def _output_above_the_bar() -> Iterator[None]:
    """Log records (and warnings, as log records) are written with tqdm.write while the bar shows."""
    logging.captureWarnings(True)
    try:
        with logging_redirect_tqdm():
            yield
    finally:
        logging.captureWarnings(False)


def _lane_text(progress: dict[str, Any]) -> str:
    """The run's share and its lane, while it runs: "12 in flight | lane 480/1,000 rpm (headers)"."""
    if progress["status"] != RunStatus.RUNNING:
        return ""
    in_flight, lane = progress["in_flight"], progress["lane"]
    parts = [f"{in_flight} in flight"] if in_flight is not None else []
    if lane is not None:
        limit = f"/{lane['rpm_limit']:,}" if lane["rpm_limit"] else ""
        parts.append(f"lane {lane['rate_rpm']:,.0f}{limit} rpm" + (f" ({lane['limits_source']})"
                                                                  if lane["limits_source"] else ""))
    return " | ".join(parts)


def _postfix(progress: dict[str, Any]) -> str:
    """What the bar says beside the counts (its own figures give the blocks/s)."""
    text = f"{progress['status']}, {progress['counts']['failed']} failed, {format_usd(progress['cost_usd'])}"
    extra = [part for part in (_lane_text(progress), progress["waiting_reason"]) if part]
    return " | ".join([text, *extra])


def follow_run(run_id: RunId, *, out: TextIO, poll_seconds: float = 0.5,
               stop_when: tuple[str, ...] = RUN_SETTLED, detach_line: str | None = None) -> Followed:
    """Show the run's progress on `out` until its status is one of `stop_when`.

    Ctrl-C leaves the run alone and returns with `detached` set, after writing `detach_line` (by
    default: the run goes on, and the command that follows it again)."""
    run = Run.objects.get(pk=run_id)
    # `initial`: the blocks done before this follow began are not progress it saw, so a follow attached
    # mid-run does not start at "530 block/s" (tqdm's rate is (n - initial) / elapsed until it has
    # seen the bar move).
    with _output_above_the_bar(), tqdm(total=run.total_blocks, initial=run.terminal_blocks, unit="block",
                                       file=out, dynamic_ncols=True) as bar:
        try:
            while True:
                run.refresh_from_db()
                bar.total = run.total_blocks
                if run.terminal_blocks < bar.n:  # a new pass took blocks back: measure afresh
                    bar.reset(total=run.total_blocks)
                    bar.initial = run.terminal_blocks
                bar.n = run.terminal_blocks
                # The snapshot the live progress stream sends (apps/runs/reporting/live.py), polled here.
                bar.set_postfix_str(_postfix(run_progress(run)), refresh=False)
                bar.refresh()
                if run.status in stop_when:
                    return Followed(run)
                time.sleep(poll_seconds)
        except KeyboardInterrupt:
            bar.close()
            line = detach_line or (f"Detached: run {run.pk} goes on without you. "
                                   f"Follow it again with: {follow_command(run.pk)}")
            out.write(f"\n{line}\n")
            out.flush()
            return Followed(run, detached=True)


def _failed_codes(run: Run) -> str:
    rows = list(
        Block.objects.filter(run_id=run.pk, status=BlockStatus.FAILED).values_list("error_code")
        .annotate(n=Count("pk")).order_by("-n", "error_code")[:TOP_ERROR_CODES + 1]
    )
    codes = [f"{n} {code or 'unknown'}" for code, n in rows[:TOP_ERROR_CODES]]
    if len(rows) > TOP_ERROR_CODES:
        codes.append("...")
    return ", ".join(codes)


def cost_lines(report: CostReport) -> list[str]:
    """What caching, packing and batch mode saved, the cache's hit rate and the run's warnings, as the
    summary prints them."""
    savings, cache = report.savings, report.cache
    if not savings.unpacked_uncached_usd:  # nothing billed yet: nothing to say about savings
        return [f"  warning    {warning['message']}" for warning in report.warnings]
    lines = [f"  savings    without caching {format_usd(savings.uncached_usd)} (caching saved "
             f"{format_usd(savings.caching_saved_usd)}), without caching or packing "
             f"{format_usd(savings.unpacked_uncached_usd)} (packing saved "
             f"{format_usd(savings.packing_saved_usd)})"
             + ("" if savings.packing_measured else "; packing not measured: nothing was cached")]
    if savings.batch:
        lines.append(f"  batch      at live prices {format_usd(savings.live_usd)} (batch mode saved "
                     f"{format_usd(savings.batch_saved_usd)})")
    if cache.caching or cache.hit_rate:
        rate = "-" if cache.hit_rate is None else f"{100 * cache.hit_rate:.1f}%"
        lines.append(f"  cache      hit rate {rate}: {cache.read_tokens:,} tokens read of "
                     f"{cache.cacheable_tokens:,} cacheable")
    lines += [f"  warning    {warning['message']}" for warning in report.warnings]
    return lines


def summary(run: Run, *, failures_below: bool = False) -> str:
    """What a run did, where its failures are and how to get its results: the last thing a follow
    prints, and the head of `manage.py runs show` (which lists the recent failures below it:
    `failures_below`, so it does not send the reader to itself)."""
    duration = (
        (run.finished_at - run.started_at).total_seconds()
        if run.finished_at and run.started_at else None
    )
    reason = run_waiting_reason(run)
    calls = run_call_counts(run_id=run.pk)
    lines = [
        f"run {run.pk}: {run_status_text(run)}" + (f" ({reason})" if reason else ""),
        f"  blocks     {run.total_blocks} total, {run.completed_blocks} succeeded, "
        f"{run.failed_blocks} failed, {run.canceled_blocks} canceled",
        f"  tokens     {run.input_tokens} in, {run.output_tokens} out, "
        f"{run.cache_creation_input_tokens} cache write, {run.cache_read_input_tokens} cache read",
        f"  cost       {format_usd(run.cost_usd)} ({run.model})",
        *cost_lines(run_cost_report(run)),
        f"  calls      {calls['calls']} provider calls ({calls['not_succeeded']} retried or failed)",
    ]
    if duration:
        lines.append(f"  time       {duration:.1f}s, {run.terminal_blocks / duration:.1f} blocks/s")
    if run.failed_blocks:
        where = ("the most recent below; every one: the admin's Pipeline failures page, or "
                 f"GET /api/v1/failures/?run={run.pk}") if failures_below else (
                 f"see {MANAGE} runs show {run.pk}, or the admin's Pipeline failures page")
        lines.append(f"  failures   {_failed_codes(run)}: {where}")
    lines.append(f"  results    {export_command(run.pk)}")
    return "\n".join(lines)


def describe_estimate(estimate: RunEstimate) -> str:
    """The preflight estimate as `submit --estimate` prints it."""
    return "\n".join([
        f"estimate   {estimate.blocks} blocks in {estimate.calls} calls",
        f"  input    {estimate.input_tokens_low:,} to {estimate.input_tokens_high:,} tokens",
        f"  output   up to {estimate.output_tokens_max:,} tokens (max_tokens per call)",
        f"  cost     {format_usd(estimate.cost_usd_low)} (input only, cache hits) to "
        f"{format_usd(estimate.cost_usd_high)} (worst case: what a budget reserves)",
        "nothing was submitted",
    ])
