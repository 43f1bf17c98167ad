"""The scheduler's scenarios against the mock provider, each reported as a ratio measured in this run.

    uv run python scripts/benchmark.py [--scenarios latency,overhead,limit,overload,fair,pool,realistic]
                                       [--blocks 3000] [--concurrency 2] [--plot out.png]
                                       [--database-url URL] [--redis-url URL] [--burst-seconds 1]
                                       [realistic: --latency 15 --jitter 5 --rpm 4000 --itpm 2000000
                                        --otpm 400000 --parallelism 1000 --input-tokens 400
                                        --max-tokens 64 --systems conveyor,plain,litellm]

  latency   cap 100, 1 s calls: Conveyor's blocks/s against the ideal (cap / latency)
  overhead  cap 100, 200 ms calls: Conveyor against a plain asyncio loop over AsyncAnthropic with
            a semaphore of the same cap, in one process, no database (the client's own CPU bound)
  limit     the mock enforcing RPM and input TPM per key: the rate Conveyor sustains after the
            buckets' initial burst, against the binding limit, and the share of calls refused (429)
  overload  2% of calls answered 529: the time to finish against the same run fault-free
  fair      six runs of three owners submitted together: when each gets its first result
  pool      one run over a pool of three keys, the mock enforcing 300 RPM per key: the rate it
            sustains against the pool's 900 RPM, the calls per key and the share refused (429)
  realistic a tier-4 key at 15 s +- 5 s calls, 10,000 blocks, parallelism 1,000: Conveyor beside a
            plain AsyncAnthropic loop and LiteLLM's Router, one table (scripts/bench_realistic.py)
  --cost    the cost report instead (scripts/cost_report.py): 240 essays uncached, cached, cached and
            packed, in batch mode; cost ratios and output mismatches against the uncached run

--plot out.png draws each scenario over time (scripts/bench_plot.py): throughput (blocks/s), calls in
flight and refusals (429/529 per s), one row per scenario, sampled about four times a second from the
database and the mock's stats while the scenario runs.

Conveyor runs end to end: runs submitted to PostgreSQL, one real `celery worker -c N` (default 2:
one serving process plus one for control tasks, as the README starts it) and beat, results written
back. Needs PostgreSQL and Redis (--database-url / --redis-url, else DATABASE_URL / REDIS_URL; defaults:
local servers, database `conveyor_bench`, created if missing, Redis db 9). The mock's rate-limit buckets
hold one second of each limit unless --burst-seconds says otherwise, as the API may enforce its
limits. Timings are noisy on a shared machine: read the ratios, which compare runs made side by side.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts import bench_realistic  # noqa: E402  (needs ROOT on the path)
from scripts.bench_db import ensure_database  # noqa: E402

SECRET = "bench-mock-key"
MODEL = "claude-haiku-4-5"


def use_bench_environment(database_url: str | None, redis_url: str | None) -> None:
    """The environment the benchmark and the worker it starts share (set before Django starts)."""
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/conveyor_bench")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
    os.environ.setdefault("PROVIDER_HOST_ALLOWLIST", "127.0.0.1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DEBUG", "false")  # as deployed: no per-query debug bookkeeping
    os.environ.setdefault("PUMP_INTERVAL_SECONDS", "1")
    os.environ.setdefault("BATCH_POLL_SECONDS", "2")


@contextmanager
def stack(concurrency: int) -> Iterator[list[subprocess.Popen]]:
    """A real worker and beat, started fresh (Redis flushed first: lanes start from nothing); yields
    their processes, each the leader of a session of its own (scripts/bench_meter.py measures them)."""
    import redis

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "llm,control",
                 "-c", str(concurrency), "-n", "bench@%h", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "-l", os.environ.get("BENCH_WORKER_LOG_LEVEL", "warning")],
                cwd=ROOT, env=env,  # BENCH_WORKER_LOG: keep the worker's log there
                stdout=open(os.environ.get("BENCH_WORKER_LOG") or Path(tmp) / "worker.log", "w"),  # noqa: SIM115
                stderr=subprocess.STDOUT, start_new_session=True),
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "beat", "-s", str(Path(tmp) / "schedule"),
                 "-l", "warning", "--scheduler", "celery.beat:PersistentScheduler"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                start_new_session=True),
        ]
        try:
            worker_wait_ready(procs[0])  # no clock starts before the worker answers
            yield procs
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def worker_wait_ready(proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the worker answers a ping (its boot is minutes of imports on a loaded machine, which no
    scenario measures), then a moment for its pool processes to come up."""
    import socket

    from config.celery_app import app

    deadline = time.monotonic() + timeout
    while not app.control.ping(destination=[f"bench@{socket.gethostname()}"], timeout=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the benchmark worker did not start")
    time.sleep(1)


@contextmanager
def bench_mock(args: argparse.Namespace, **config: Any) -> Iterator[Any]:
    """The mock in its own process, watched by the plot's sampler (if --plot) while it runs."""
    from mock_provider.testing import running_mock_process

    sampler = getattr(args, "sampler", None)
    api_keys = config.pop("api_keys", [SECRET])
    with running_mock_process(api_keys=api_keys, **config) as mock:
        if sampler is not None:
            sampler.watch(mock)
        try:
            yield mock
        finally:
            if sampler is not None:
                sampler.watch(None)


def bench_user(name: str = "bench") -> Any:
    from django.contrib.auth import get_user_model

    from apps.runs.models import Run
    from apps.runs.services import run_cancel

    user, _ = get_user_model().objects.get_or_create(username=name)
    # Runs left active by an interrupted benchmark would compete for the worker: end them first.
    for stale in Run.objects.filter(owner=user, status__in=["queued", "running", "paused"]):
        run_cancel(run_id=stale.pk)
    return user


def submit(user: Any, key: Any, blocks: int, *, cap: int, text: str = "benchmark essay {i}",
           **options: Any) -> Any:
    from apps.runs.services import BlockSpec, run_create

    return run_create(owner=user, key=key, model=MODEL, max_tokens=300, parallelism=cap,
                      blocks=(BlockSpec(uid=str(i), input=text.format(i=i)) for i in range(blocks)),
                      **options)


def wait_until_ended(*runs: Any, timeout: float = 1800) -> None:
    from apps.runs.models import Run

    ids = [run.pk for run in runs]
    deadline = time.monotonic() + timeout
    while Run.objects.filter(pk__in=ids, status__in=["complete", "canceled"]).count() < len(ids):
        if time.monotonic() > deadline:
            raise TimeoutError("runs did not end")
        time.sleep(0.05)
    for run in runs:
        run.refresh_from_db()
        assert run.completed_blocks == run.total_blocks, (run.pk, run.completed_blocks, run.total_blocks)


def new_key(user: Any, base_url: str) -> Any:
    from tests.factories import make_key

    return make_key(user, base_url=base_url, secret=SECRET, label=f"bench-{time.time_ns()}")


def conveyor_rate(base_url: str, blocks: int, cap: int, concurrency: int) -> float:
    user = bench_user()
    with stack(concurrency):
        started = time.perf_counter()
        run = submit(user, new_key(user, base_url), blocks, cap=cap)
        wait_until_ended(run)
        return blocks / (time.perf_counter() - started)


async def plain_asyncio(base_url: str, blocks: int, cap: int) -> float:
    import anthropic

    client = anthropic.AsyncAnthropic(api_key=SECRET, base_url=base_url, max_retries=0)
    gate = asyncio.Semaphore(cap)

    async def one(i: int) -> None:
        async with gate:
            await client.messages.create(
                model=MODEL, max_tokens=300,
                messages=[{"role": "user", "content": f"benchmark essay {i}"}],
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(blocks)))
    elapsed = time.perf_counter() - started
    await client.close()
    return blocks / elapsed


def scenario_latency(args: argparse.Namespace) -> list[str]:
    blocks = min(args.blocks, 3000)
    with bench_mock(args, latency_ms=1000) as mock:
        rate = conveyor_rate(mock.base_url, blocks, 100, args.concurrency)
    return [f"latency   cap 100, 1 s calls, {blocks} blocks: ideal 100.0/s, conveyor {rate:.1f}/s "
            f"= {rate / 100:.2f} of ideal"]


def scenario_overhead(args: argparse.Namespace) -> list[str]:
    with bench_mock(args, latency_ms=200) as mock:
        plain = asyncio.run(plain_asyncio(mock.base_url, args.blocks, 100))
        rate = conveyor_rate(mock.base_url, args.blocks, 100, args.concurrency)
        plain_after = asyncio.run(plain_asyncio(mock.base_url, args.blocks, 100))
    plain = (plain + plain_after) / 2  # the machine's load drifts: the plain loop before and after
    return [f"overhead  cap 100, 200 ms calls, {args.blocks} blocks: ideal 500/s, plain asyncio "
            f"{plain:.1f}/s, conveyor {rate:.1f}/s = {rate / plain:.2f} of plain asyncio"]


def scenario_limit(args: argparse.Namespace) -> list[str]:
    """ITPM binds: 200-token inputs, 120,000 input tokens/min = 600 calls/min, against 1,200 RPM."""
    rpm, itpm, tokens = 1200, 120_000, 200
    blocks = 1500
    text = "x" * (tokens * 4 - 20) + " essay {i:09d}"  # the mock counts 4 characters per token
    binding = min(rpm, itpm / tokens) / 60  # calls per second
    with bench_mock(args, latency_ms=200, rpm=rpm, itpm=itpm, burst_seconds=args.burst_seconds) as mock:
        user = bench_user()
        with stack(args.concurrency):
            run = submit(user, new_key(user, mock.base_url), blocks, cap=100, text=text)
            wait_until_ended(run)
        log = [r for r in mock.stats(limit=20_000)["log"] if r["path"] == "/v1/messages"]
    admitted = sorted(r["t"] for r in log if r["status"] == 200)
    refused = sum(r["status"] == 429 for r in log)
    # Past the buckets' initial burst (--burst-seconds of the limit): the sustained rate.
    burst = int(min(rpm, itpm / tokens) * args.burst_seconds / 60)
    steady = admitted[burst:]
    start, end = steady[0], steady[-1]
    sustained = (len(steady) - 1) / (end - start) if end > start else 0.0
    return [f"limit     {rpm} RPM, {itpm:,} ITPM, {tokens}-token inputs (binding {binding:.1f} calls/s), "
            f"{blocks} blocks: sustained {sustained:.2f} calls/s = {sustained / binding:.2f} of the "
            f"binding limit; refused {refused} of {len(log)} calls ({100 * refused / len(log):.2f}%)"]


def scenario_overload(args: argparse.Namespace) -> list[str]:
    blocks = min(args.blocks, 2000)
    times = {}
    for label, faults in (("fault-free", {}), ("2% 529", {"529": 0.02})):
        with bench_mock(args, latency_ms=200, fault_rates=faults, seed=7) as mock:
            times[label] = blocks / conveyor_rate(mock.base_url, blocks, 100, args.concurrency)
    ratio = times["2% 529"] / times["fault-free"]
    return [f"overload  cap 100, 200 ms calls, {blocks} blocks: fault-free {times['fault-free']:.1f} s, "
            f"with 2% 529s {times['2% 529']:.1f} s = {ratio:.2f}x"]


def scenario_fair(args: argparse.Namespace) -> list[str]:
    """Six runs of three owners at once, one worker: how long each waits for its first result."""
    from apps.runs.models import Attempt
    with bench_mock(args, latency_ms=300) as mock:
        owners = [bench_user(f"bench-owner-{n}") for n in range(3)]
        keys = [new_key(owner, mock.base_url) for owner in owners]
        with stack(args.concurrency):
            submitted = time.time()
            runs = [submit(owners[n % 3], keys[n % 3], 400 if n < 3 else 40, cap=64) for n in range(6)]
            wait_until_ended(*runs)
            ended = time.time()
    lines = []
    for run in runs:
        first_call = Attempt.objects.filter(run=run).order_by("started_at").first()
        first = Attempt.objects.filter(run=run, outcome="succeeded").order_by("created_at").first()
        assert first_call is not None and first_call.started_at is not None and first is not None
        assert run.finished_at is not None  # wait_until_ended: every run has ended
        created = run.created_at.timestamp()
        lines.append(
            f"fair      run of {run.owner.username} with {run.total_blocks} blocks: first call "
            f"{first_call.started_at.timestamp() - created:.2f} s after its submission, first result "
            f"{first.created_at.timestamp() - created:.2f} s, "
            f"done {run.finished_at.timestamp() - created:.1f} s"
        )
    lines.append(f"fair      all six done after {ended - submitted:.1f} s")
    return lines


def scenario_pool(args: argparse.Namespace) -> list[str]:
    """A run over three keys of 300 RPM each (issue 22): the sum of their limits is what it can reach."""
    from django.db.models import Count

    from apps.runs.models import Attempt
    from apps.runs.services import BlockSpec, run_create
    from tests.factories import make_key

    rpm, pool, latency_ms = 300, 3, 500
    blocks = min(args.blocks, 1200)  # ~80 s at 900 RPM
    secrets = [f"{SECRET}-pool-{i}" for i in range(pool)]
    binding = rpm * pool / 60  # calls per second
    with bench_mock(args, latency_ms=latency_ms, rpm=rpm, burst_seconds=args.burst_seconds,
                    api_keys=secrets) as mock:
        user = bench_user()
        keys = [make_key(user, base_url=mock.base_url, secret=secret,
                         label=f"bench-pool-{i}-{time.time_ns()}") for i, secret in enumerate(secrets)]
        with stack(args.concurrency):
            run = run_create(owner=user, keys=keys, model=MODEL, max_tokens=300, parallelism=100,
                             blocks=(BlockSpec(uid=str(i), input=f"pool essay {i}") for i in range(blocks)))
            wait_until_ended(run)
        log = [r for r in mock.stats(limit=20_000)["log"] if r["path"] == "/v1/messages"]
    admitted = sorted(r["t"] for r in log if r["status"] == 200)
    refused = sum(r["status"] == 429 for r in log)
    burst = int(rpm * pool * args.burst_seconds / 60)  # the buckets' initial burst, then the steady rate
    steady = admitted[burst:]
    sustained = (len(steady) - 1) / (steady[-1] - steady[0]) if steady[-1] > steady[0] else 0.0
    per_key = dict(Attempt.objects.filter(run=run, outcome="succeeded").values_list("key__label")
                   .annotate(n=Count("id")).values_list("key__label", "n"))
    spread = ", ".join(f"{per_key.get(key.label, 0)}" for key in keys)
    return [f"pool      {pool} keys x {rpm} RPM (binding {binding:.1f} calls/s), {latency_ms} ms calls, "
            f"{blocks} blocks: sustained {sustained:.2f} calls/s = {sustained / binding:.2f} of the "
            f"pool's limit; answers per key {spread}; refused {refused} of {len(log)} calls "
            f"({100 * refused / max(len(log), 1):.2f}%)"]


def scenario_realistic(args: argparse.Namespace) -> list[str]:
    """A tier-4 key at 15 s calls: Conveyor, the plain loop and LiteLLM's Router, one after the other."""
    settings = args.realistic
    rows = []
    with bench_mock(args, **settings.mock_config()) as mock:
        for system in settings.systems:
            if system == "conveyor":
                row = bench_realistic.run_conveyor(mock, settings, args.concurrency, stack, new_key,
                                                   bench_user, MODEL)
            elif system == "plain":
                row = bench_realistic.run_peer("plain", bench_realistic.python_for_plain(), "peer_plain.py",
                                               mock, settings, SECRET, MODEL)
            else:
                row = bench_realistic.run_peer("litellm", bench_realistic.peers_python(), "peer_litellm.py",
                                               mock, settings, SECRET, MODEL)
            rows.append(row)
            print(f"realistic {system} done in {row.wall_seconds:.0f} s", flush=True)
    return [f"realistic {settings.describe()}", *bench_realistic.render_table(rows)]


SCENARIOS = {"latency": scenario_latency, "overhead": scenario_overhead, "limit": scenario_limit,
             "overload": scenario_overload, "fair": scenario_fair, "pool": scenario_pool,
             "realistic": scenario_realistic}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--blocks", type=int, help="blocks per scenario (3000; realistic: 10000)")
    parser.add_argument("--concurrency", type=int, default=2, help="the worker's -c")
    parser.add_argument("--cost", action="store_true", help="run the cost scenario (scripts/cost_report.py)")
    parser.add_argument("--plot", metavar="PNG", help="draw each scenario over time into this PNG file")
    parser.add_argument("--database-url", help="PostgreSQL for the runs (else $DATABASE_URL, else "
                        "conveyor_bench on the local server)")
    parser.add_argument("--redis-url", help="Redis for the worker (else $REDIS_URL, else local db 9)")
    parser.add_argument("--burst-seconds", type=float, default=1.0,
                        help="the mock's rate-limit buckets hold this many seconds of each limit (1, as the\n"
                        "API may enforce its limits; 60 = a whole minute's burst at once)")
    bench_realistic.add_arguments(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios.split(",")) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    try:
        args.realistic = bench_realistic.settings_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    args.blocks = args.blocks or 3000
    return args


def main() -> None:
    args = parse_args()
    use_bench_environment(args.database_url, args.redis_url)
    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"worker -c {args.concurrency}; {os.cpu_count()} cores")
    if args.cost:
        from scripts.cost_report import scenario_cost

        scenarios = {"cost": scenario_cost}
    else:
        scenarios = {name: SCENARIOS[name] for name in args.scenarios.split(",")}
    series = {}
    for name, scenario in scenarios.items():
        if args.plot:
            from scripts.bench_plot import Sampler

            with Sampler() as args.sampler:
                lines = scenario(args)
            series[name] = args.sampler.series()
        else:
            lines = scenario(args)
        for line in lines:
            print(line, flush=True)
    if args.plot:
        from scripts.bench_plot import plot_scenarios

        print(f"plot: {plot_scenarios(series, args.plot)}")


if __name__ == "__main__":
    main()
