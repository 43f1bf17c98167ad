"""Throughput of the pipeline against the mock provider at a fixed latency, as ratios in one run.

    uv run python scripts/benchmark.py [--blocks 3000] [--cap 100] [--latency-ms 200]

Reports blocks/second for:
  ideal      cap / latency: what a perfect client could do with that many calls in flight;
  asyncio    a plain asyncio loop over AsyncAnthropic with a semaphore of `cap` (no database);
  pipeline   Conveyor end to end: submit, a real Celery worker (one process) claiming, calling,
             writing every result to PostgreSQL, finishing the run.
Needs PostgreSQL and Redis (DATABASE_URL / REDIS_URL, defaults: local servers, database
`conveyor_bench`, created if missing). Timings are noisy on a shared machine: read the ratios.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_db import ensure_database  # noqa: E402  (needs ROOT on the path)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/conveyor_bench")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
os.environ.setdefault("PROVIDER_HOST_ALLOWLIST", "127.0.0.1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("PUMP_INTERVAL_SECONDS", "1")


async def plain_asyncio(base_url: str, secret: str, blocks: int, cap: int) -> float:
    import anthropic

    client = anthropic.AsyncAnthropic(api_key=secret, base_url=base_url, max_retries=0)
    gate = asyncio.Semaphore(cap)

    async def one(i: int) -> None:
        async with gate:
            await client.messages.create(
                model="claude-haiku-4-5", max_tokens=300,
                messages=[{"role": "user", "content": f"benchmark essay {i}"}],
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(blocks)))
    elapsed = time.perf_counter() - started
    await client.close()
    return blocks / elapsed


def pipeline(base_url: str, secret: str, blocks: int, cap: int, workers: int) -> float:
    import redis
    from django.contrib.auth import get_user_model

    from apps.runs.models import Run
    from apps.runs.services import BlockSpec, run_cancel, run_create
    from tests.factories import make_key

    user, _ = get_user_model().objects.get_or_create(username="bench")
    # Runs left active by an interrupted benchmark would compete for the worker: end them first.
    for stale in Run.objects.filter(owner=user, status__in=["queued", "running", "paused"]):
        run_cancel(run_id=stale.pk)
    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    key = make_key(user, base_url=base_url, secret=secret, label=f"bench-{time.time_ns()}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(workers):
            log = open(Path(tmp) / f"w{n}.log", "w")  # noqa: SIM115
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "llm,control",
                 "-c", "1", "-n", f"bench{n}@%h", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "-l", "warning"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "-s",
             str(Path(tmp) / "schedule"), "-l", "warning", "--scheduler",
             "celery.beat:PersistentScheduler"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)
        procs.append(beat)
        try:
            time.sleep(4)  # let the worker connect before the clock starts
            started = time.perf_counter()
            run = run_create(owner=user, key=key, model="claude-haiku-4-5", max_tokens=300,
                             parallelism=cap,
                             blocks=(BlockSpec(uid=str(i), input=f"benchmark essay {i}")
                                     for i in range(blocks)))
            while Run.objects.filter(pk=run.pk, status="complete").count() == 0:
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:  # a drain mid-slice: its leases simply expire
                    proc.kill()
                    proc.wait()
    run.refresh_from_db()
    assert run.completed_blocks == blocks, run.completed_blocks
    return blocks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--blocks", type=int, default=3000)
    parser.add_argument("--cap", type=int, default=100, help="calls in flight (run parallelism)")
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    args = parser.parse_args()

    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from mock_provider.testing import running_mock_process

    secret = "bench-mock-key"
    with running_mock_process(api_keys=[secret], latency_ms=args.latency_ms) as mock:
        ideal = args.cap / (args.latency_ms / 1000)
        plain = asyncio.run(plain_asyncio(mock.base_url, secret, args.blocks, args.cap))
        piped = pipeline(mock.base_url, secret, args.blocks, args.cap, args.workers)
    print(f"blocks={args.blocks} cap={args.cap} latency={args.latency_ms:.0f}ms "
          f"workers={args.workers}")
    print(f"{'ideal (cap/latency)':<22}{ideal:>10.1f} blocks/s  1.00")
    print(f"{'plain asyncio':<22}{plain:>10.1f} blocks/s  {plain / ideal:.2f} of ideal")
    print(f"{'conveyor pipeline':<22}{piped:>10.1f} blocks/s  {piped / ideal:.2f} of ideal, "
          f"{piped / plain:.2f} of plain asyncio")


if __name__ == "__main__":
    main()
