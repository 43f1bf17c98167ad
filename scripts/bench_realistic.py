"""The realistic scenario: a real key's limits at a real provider's latency, Conveyor beside what a user
would pick instead, one after the other against the same mock settings and the same blocks.

Defaults (issue 24): a tier-4 key (4,000 RPM, 2,000,000 input and 400,000 output tokens a minute,
buckets holding one second's worth), calls that take 15 s +- 5 s (uniform), 10,000 blocks of 400 input
tokens with max_tokens 64 (each reply writes 40), parallelism 1,000. The systems:
  conveyor  a run through the README's worker (`celery -A config worker -Q llm,control -c 2`) and beat
  plain     AsyncAnthropic with the SDK's default retries and an asyncio.Semaphore (scripts/peer_plain.py)
  litellm   LiteLLM's Router with rpm/tpm on the deployment (scripts/peer_litellm.py), in a virtualenv
            of its own, var/peers-venv, built from scripts/peers-requirements.txt when first asked for

Each system's row: calls/s (calls answered 200, over the span from the first such call's arrival to
the last's, on the mock's clock), that rate against the binding limit (the lowest of rpm/60,
itpm/60/input tokens per call, otpm/60/output tokens per call, per call as the mock billed them), the
share of /v1/messages requests refused with 429, blocks failed after retries, the most calls in flight
at the mock at once, CPU seconds of the system's processes (from /proc, start-up excluded), wall time
from submission to the last block, and memory per call in flight (RSS growth over the start-up's,
divided by the peak in flight).
"""

import argparse
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PEERS_VENV = ROOT / "var" / "peers-venv"
PEERS_REQUIREMENTS = ROOT / "scripts" / "peers-requirements.txt"
SYSTEMS = ("conveyor", "plain", "litellm")


@dataclass(frozen=True)
class RealisticSettings:
    latency: float = 15.0  # seconds
    jitter: float = 5.0  # seconds either side, uniform
    rpm: int = 4_000
    itpm: int = 2_000_000
    otpm: int = 400_000
    burst_seconds: float = 1.0
    blocks: int = 10_000
    parallelism: int = 1_000
    input_tokens: int = 400
    max_tokens: int = 64
    output_tokens: int = 40  # what each reply writes: an answer that fits in max_tokens
    systems: tuple[str, ...] = SYSTEMS
    # The tier Conveyor's key declares (the key form's "tier", as a user with a tier-4 key picks it);
    # "": a key that says nothing, whose lane starts cautiously until the first response's headers.
    tier: str = "tier_4"

    def mock_config(self) -> dict[str, Any]:
        return {"latency_ms": self.latency * 1000, "latency_jitter_ms": self.jitter * 1000, "rpm": self.rpm,
                "itpm": self.itpm, "otpm": self.otpm, "burst_seconds": self.burst_seconds}

    def describe(self) -> str:
        return (f"{self.rpm:,} RPM, {self.itpm:,} ITPM, {self.otpm:,} OTPM (buckets of "
                f"{self.burst_seconds:g} s), calls {self.latency:g} s +- {self.jitter:g} s, {self.blocks:,} "
                f"blocks of {self.input_tokens} input tokens, {self.output_tokens} output of max_tokens "
                f"{self.max_tokens}, "
                f"parallelism {self.parallelism}, Conveyor's key declaring {self.tier or 'no tier'}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The realistic scenario's options (--blocks and --burst-seconds are benchmark.py's own, shared with
    the other scenarios; --blocks is 10,000 here unless given)."""
    group = parser.add_argument_group("realistic scenario")
    defaults = RealisticSettings()
    group.add_argument("--latency", type=float, default=defaults.latency, help="seconds per call (15)")
    group.add_argument("--jitter", type=float, default=defaults.jitter, help="+- seconds, uniform (5)")
    group.add_argument("--rpm", type=int, default=defaults.rpm)
    group.add_argument("--itpm", type=int, default=defaults.itpm)
    group.add_argument("--otpm", type=int, default=defaults.otpm)
    group.add_argument("--parallelism", type=int, default=defaults.parallelism)
    group.add_argument("--input-tokens", type=int, default=defaults.input_tokens)
    group.add_argument("--max-tokens", type=int, default=defaults.max_tokens)
    group.add_argument("--output-tokens", type=int, default=defaults.output_tokens,
                       help="tokens each reply writes (40; below --max-tokens)")
    group.add_argument("--systems", default=",".join(SYSTEMS), help="any of conveyor,plain,litellm")
    group.add_argument("--tier", default=defaults.tier,
                       help="the tier Conveyor's key declares (tier_4; '' for none: a cautious start "
                            "until the first response)")


def settings_from(args: argparse.Namespace) -> RealisticSettings:
    systems = tuple(name.strip() for name in args.systems.split(",") if name.strip())
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown or not systems:
        raise ValueError(f"unknown systems {unknown}; known: {', '.join(SYSTEMS)}")
    if not 0 < args.output_tokens < args.max_tokens:
        raise ValueError("--output-tokens must be above 0 and below --max-tokens (a reply cut at "
                         "max_tokens is a failed block)")
    return RealisticSettings(
        latency=args.latency, jitter=args.jitter, rpm=args.rpm, itpm=args.itpm, otpm=args.otpm,
        burst_seconds=args.burst_seconds, blocks=args.blocks or RealisticSettings.blocks,
        parallelism=args.parallelism, input_tokens=args.input_tokens, max_tokens=args.max_tokens,
        output_tokens=args.output_tokens, systems=systems, tier=args.tier)


def binding_limit(rpm: int, itpm: int, otpm: int, input_per_call: float, output_per_call: float
                  ) -> tuple[float, str]:
    """Calls per second the key allows, and which limit binds."""
    candidates = [(rpm / 60, "rpm")]
    if input_per_call > 0:
        candidates.append((itpm / 60 / input_per_call, "itpm"))
    if output_per_call > 0:
        candidates.append((otpm / 60 / output_per_call, "otpm"))
    return min(candidates)


@dataclass(frozen=True)
class Row:
    system: str
    calls_per_s: float
    binding_per_s: float
    binding: str
    refused_share: float  # of /v1/messages requests, 429s
    failed_blocks: int
    blocks: int
    peak_in_flight: int
    cpu_seconds: float
    wall_seconds: float
    kb_per_call: float | None  # RSS growth / peak in flight

    @property
    def ratio(self) -> float:
        return self.calls_per_s / self.binding_per_s if self.binding_per_s else 0.0


def row_from(system: str, stats: dict[str, Any], settings: RealisticSettings, *, failed_blocks: int,
             cpu_seconds: float, wall_seconds: float, rss_growth: int | None) -> Row:
    """One system's row from the mock's stats (reset before it ran) and what was measured around it."""
    ok = stats["messages_ok"]
    count, first, last = ok["count"], ok["first_t"], ok["last_t"]
    rate = (count - 1) / (last - first) if count > 1 and last > first else 0.0
    tokens = stats["tokens"]
    input_per_call = (tokens["input_tokens"] + tokens["cache_creation_input_tokens"]) / count if count else 0
    output_per_call = tokens["output_tokens"] / count if count else 0
    binding_per_s, binding = binding_limit(settings.rpm, settings.itpm, settings.otpm,
                                           input_per_call, output_per_call)
    requests = stats["by_path"].get("/v1/messages", 0)
    refused = stats["by_status"].get("429", 0)
    peak = stats["peak_in_flight"]
    kb = rss_growth / 1024 / peak if rss_growth is not None and peak else None
    return Row(system=system, calls_per_s=rate, binding_per_s=binding_per_s, binding=binding,
               refused_share=refused / requests if requests else 0.0, failed_blocks=failed_blocks,
               blocks=settings.blocks, peak_in_flight=peak, cpu_seconds=cpu_seconds,
               wall_seconds=wall_seconds, kb_per_call=kb)


COLUMNS = ("system", "calls/s", "of limit", "429s", "failed blocks", "peak in flight", "CPU s", "wall s",
           "KB/call in flight")


def render_table(rows: list[Row]) -> list[str]:
    """A Markdown table, one row per system, then the binding limit it was measured against."""
    cells = [[row.system, f"{row.calls_per_s:.1f}", f"{row.ratio:.2f}", f"{100 * row.refused_share:.1f}%",
              f"{row.failed_blocks} of {row.blocks:,}", str(row.peak_in_flight), f"{row.cpu_seconds:.0f}",
              f"{row.wall_seconds:.0f}", "-" if row.kb_per_call is None else f"{row.kb_per_call:.0f}"]
             for row in rows]
    widths = [max(len(c[i]) for c in [list(COLUMNS), *cells]) for i in range(len(COLUMNS))]

    def line(values: list[str] | tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    lines = [line(COLUMNS), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)]
    if rows:
        lines.append(f"binding limit: {rows[0].binding} = {rows[0].binding_per_s:.1f} calls/s")
    return lines


# --- running the systems ------------------------------------------------------------------------------

def peers_python() -> Path:
    """The LiteLLM peer's interpreter: var/peers-venv, (re)built with uv when the pinned requirements
    changed. Never the project's virtualenv."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / "requirements.sha256"
    wanted = hashlib.sha256(PEERS_REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    subprocess.run(["uv", "venv", "--allow-existing", "-q", str(PEERS_VENV)], check=True)
    subprocess.run(["uv", "pip", "install", "-q", "--python", str(python), "-r", str(PEERS_REQUIREMENTS)],
                   check=True)
    stamp.write_text(wanted)
    return python


def run_peer(system: str, python: Path, script: str, mock: Any, settings: RealisticSettings,
             secret: str, model: str) -> Row:
    import json

    from scripts.bench_meter import SessionMeter

    argv = [str(python), str(ROOT / "scripts" / script), "--base-url", mock.base_url, "--api-key", secret,
            "--model", model, "--blocks", str(settings.blocks), "--parallelism", str(settings.parallelism),
            "--input-tokens", str(settings.input_tokens), "--max-tokens", str(settings.max_tokens),
            "--output-tokens", str(settings.output_tokens),
            "--rpm", str(settings.rpm), "--tpm", str(settings.itpm)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {system} peer did not start")
        mock.reset()
        meter = SessionMeter([proc.pid]).start()
        started = time.perf_counter()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        result = json.loads(proc.stdout.readline())
        wall = time.perf_counter() - started
        usage = meter.stop()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return row_from(system, mock.stats(limit=0), settings, failed_blocks=result["failed"],
                    cpu_seconds=usage.cpu_seconds, wall_seconds=wall,
                    rss_growth=usage.peak_rss - usage.baseline_rss)


def run_conveyor(mock: Any, settings: RealisticSettings, concurrency: int,
                 stack: Callable[[int], Any], new_key: Callable[[Any, str], Any],
                 bench_user: Callable[[], Any], model: str) -> Row:
    from apps.runs.models import Run
    from apps.runs.services import BlockSpec, run_create
    from scripts.bench_meter import SessionMeter
    from scripts.peer_common import block_text

    user = bench_user()
    key = new_key(user, mock.base_url)
    if settings.tier:
        key.tier = settings.tier
        key.save(update_fields=["tier"])
    with stack(concurrency) as procs:
        mock.reset()
        meter = SessionMeter([proc.pid for proc in procs]).start()
        started = time.perf_counter()
        run = run_create(owner=user, key=key, model=model, max_tokens=settings.max_tokens,
                         parallelism=settings.parallelism,
                         blocks=(BlockSpec(uid=str(i), input=block_text(i, settings.input_tokens,
                                                                          settings.output_tokens))
                                 for i in range(settings.blocks)))
        deadline = time.monotonic() + 3600
        while not Run.objects.filter(pk=run.pk, status__in=["complete", "canceled"]).exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the realistic run did not end within an hour")
            time.sleep(0.25)
        wall = time.perf_counter() - started
        usage = meter.stop()
    run.refresh_from_db()
    return row_from("conveyor", mock.stats(limit=0), settings,
                    failed_blocks=run.failed_blocks + run.canceled_blocks, cpu_seconds=usage.cpu_seconds,
                    wall_seconds=wall, rss_growth=usage.peak_rss - usage.baseline_rss)


def python_for_plain() -> Path:
    return Path(sys.executable)  # the project's: anthropic is one of its dependencies
