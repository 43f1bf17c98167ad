"""Deleting (or purging) a big run while another run is being claimed: how long, how much memory, and
how much it slows the other run's claims.

    uv run python scripts/bench_delete.py [--blocks 1000000] [--claim-blocks 100000] [--baseline 10]
                                          [--purge] [--reuse] [--keep]

A database of its own (DATABASE_URL, default a local `conveyor_h2_bench`, created and migrated if
missing). It builds, with INSERT ... SELECT over generate_series (seconds, not hours): a running run of
`--claim-blocks` pending blocks first, then an ended run of `--blocks` succeeded blocks, each with one
attempt (its usage, no output: an output is stored once, on the block) and a dead-letter row for one
block in 200. Then a second process (this script with --claimer) claims 16 blocks of the running run
and gives them back (the serving loop's real `blocks_claim` and `blocks_release`), in a loop, timing
each claim; after `--baseline` seconds this process deletes the big run (`run_delete` +
`run_rows_delete`, the API's path) or, with --purge, purges it (`run_purge`), while the claims go on.
Printed: the seconds it took, this process's resident set (sampled while it works) and peak, claim
latency p50 / p99 / max before and during (and their ratios), and the tables' sizes before the big
run, after it was built, after the delete and after a VACUUM.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/conveyor_h2_bench")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ["DEBUG"] = "false"  # DEBUG keeps every SQL statement in memory

from scripts.bench_db import ensure_database  # noqa: E402  (needs ROOT on the path)
from scripts.bench_meter import peak_mb, rss_mb  # noqa: E402

TABLES = ("runs_block", "runs_attempt", "pipeline_failures", "diagnostic_logs")
CLAIM_SIZE = 16


def sizes() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        return {t: cursor.execute("SELECT pg_total_relation_size(%s)", [t]).fetchone()[0] for t in TABLES}


def mb(sizes_: dict[str, int]) -> str:
    return (
        ", ".join(f"{t} {v / 2**20:,.0f} MB" for t, v in sizes_.items())
        + f" (total {sum(sizes_.values()) / 2**20:,.0f} MB)"
    )


def insert_blocks(run_id: str, blocks: int, *, status: str) -> None:
    """`blocks` blocks of a run, written by PostgreSQL itself; succeeded ones with an output of ~400
    characters, an input of ~300, usage and a hash; pending ones with their input only."""
    from django.db import connection

    from apps.runs.models import Block

    done = status == "succeeded"
    text = "repeat('lorem ipsum dolor sit amet ', 11)"
    generated = {
        "run_id": "%(run)s::uuid",
        "block_index": "i",
        "uid": "'u-' || i",
        "status": f"'{status}'",
        "input": f"'Document ' || i || ': ' || {text}",
        "metadata": "jsonb_build_object('record_id', i)",
        "output": f"'Answer ' || i || ': ' || {text} || {text}" if done else "NULL",
        "output_sha256": "md5(i::text) || md5(i::text)" if done else "''",
        "attempts": "1" if done else "0",
        "pass_attempts": "1" if done else "0",
        "input_tokens": "90" if done else "0",
        "output_tokens": "120" if done else "0",
        "cost_usd": "0.00034" if done else "0",
        "latency_ms": "900" if done else "NULL",
        "created_at": "now()",
        "finished_at": "now()" if done else "NULL",
    }
    columns, values, params = [], [], {"run": run_id}
    for field in Block._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.attname in generated:
            values.append(generated[field.attname])
        elif field.null:
            values.append("NULL")
        else:
            name = f"d_{field.attname}"
            params[name] = field.get_db_prep_save(field.get_default(), connection)
            values.append(f"%({name})s")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO runs_block ({', '.join(columns)}) "
            f"SELECT {', '.join(values)} FROM generate_series(0, {blocks - 1}) AS i",
            params,
        )
        if not done:
            return
        cursor.execute(
            """INSERT INTO runs_attempt (run_id, block_id, number, pass_number, outcome, accepted,
                   http_status, error_code, error_message, request_id, latency_ms, model, worker,
                   input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens,
                   cost_usd, created_at)
               SELECT run_id, id, 1, 1, 'succeeded', true, 200, '', '', 'req_' || id, 900,
                      'claude-haiku-4-5', 'bench', 90, 120, 0, 0, 0.00034, now()
                 FROM runs_block WHERE run_id = %s""",
            [run_id],
        )
        cursor.execute(
            """INSERT INTO pipeline_failures (run_id, block_id, failing_function, caller_function, error_code,
                   error_message, attempt_count, replay_count, payload_snapshot, context, failed_at,
                   resolution_note)
               SELECT run_id, id, 'bench', '', 'api_error', 'the provider broke', 1, 0,
                      jsonb_build_object('input', input), '{}'::jsonb, now(), ''
                 FROM runs_block WHERE run_id = %s AND block_index %% 200 = 0""",
            [run_id],
        )


def claimer(run_id: str, out: str, stop: str) -> None:
    """The other process: claim and give back, timing each claim, until the stop file appears."""
    import django

    django.setup()
    from apps.runs.services.claiming import blocks_claim, blocks_release

    with open(out, "w") as sink:
        while not os.path.exists(stop):
            started = time.perf_counter()
            claim = blocks_claim(run_id=run_id, limit=CLAIM_SIZE, worker="bench")
            took = time.perf_counter() - started
            sink.write(f"{time.time():.4f} {took * 1000:.3f} {len(claim.blocks)}\n")
            if claim.blocks and claim.lease_token is not None:
                blocks_release(run_id=run_id, token=claim.lease_token)
            sink.flush()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def describe(name: str, values: list[float]) -> str:
    return (
        f"{name}: {len(values):,} claims, p50 {statistics.median(values):.2f} ms, "
        f"p99 {percentile(values, 0.99):.2f} ms, max {max(values):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=1_000_000)
    parser.add_argument("--claim-blocks", type=int, default=100_000)
    parser.add_argument("--baseline", type=float, default=10.0, help="seconds of claims before the delete")
    parser.add_argument("--purge", action="store_true", help="purge the run (retention) instead")
    parser.add_argument("--keep", action="store_true", help="keep the claim run and the database rows")
    parser.add_argument("--reuse", action="store_true",
                        help="after the VACUUM, build the same run again: the tables reuse the space")
    parser.add_argument("--claimer", nargs=3, metavar=("RUN", "OUT", "STOP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.claimer:
        claimer(*args.claimer)
        return

    ensure_database()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    import apps.runs.services.submission as submission
    from apps.core.crypto import encrypt_secret
    from apps.keys.models import ProviderKey
    from apps.runs.models import Run
    from apps.runs.services import BlockSpec, run_create
    from apps.runs.services.deletion import run_delete, run_rows_delete
    from apps.runs.services.retention import run_purge

    call_command("migrate", verbosity=0)
    submission.run_dispatch_on_commit = lambda **kwargs: None  # type: ignore[attr-defined]  # wake no worker
    import apps.runs.services.deletion as deletion

    deletion.run_delete_queue_on_commit = lambda run_id: None  # this process deletes, not a worker

    user = get_user_model().objects.create_user(f"bench-{uuid.uuid4().hex[:8]}")
    key = ProviderKey.objects.create(
        owner=user,
        label="bench",
        suffix="test",
        is_valid=True,
        secret_ciphertext=encrypt_secret("sk-ant-bench-test"),
    )

    def a_run(name: str) -> Run:
        run = run_create(
            owner=user,
            key=key,
            model="claude-haiku-4-5",
            name=name,
            parallelism=1000,
            blocks=[BlockSpec(uid="seed", input="seed")],
            dispatch=False,
        )
        run.blocks.all().delete()
        return run

    started = time.perf_counter()
    other = a_run("claimed meanwhile")
    insert_blocks(str(other.pk), args.claim_blocks, status="pending")
    Run.objects.filter(pk=other.pk).update(total_blocks=args.claim_blocks)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE runs_block")
    before = sizes()
    big = a_run("to delete")
    insert_blocks(str(big.pk), args.blocks, status="succeeded")
    Run.objects.filter(pk=big.pk).update(
        total_blocks=args.blocks,
        completed_blocks=args.blocks,
        status="complete",
        finished_at=timezone.now(),
        retention_days=0,
    )
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"ANALYZE {table}")
    built = sizes()
    print(
        f"built in {time.perf_counter() - started:.1f} s: a pending run of {args.claim_blocks:,} blocks, "
        f"an ended run of {args.blocks:,} blocks with {args.blocks:,} attempts and "
        f"{(args.blocks + 199) // 200:,} dead-letter rows"
    )
    print(f"sizes before the big run: {mb(before)}")
    print(f"sizes with it:            {mb(built)}")

    out, stop = f"/tmp/bench_delete_{os.getpid()}.txt", f"/tmp/bench_delete_{os.getpid()}.stop"
    child = subprocess.Popen([sys.executable, __file__, "--claimer", str(other.pk), out, stop])
    # The claimer's start (Django setup, seconds on a loaded machine) is not part of the baseline.
    for _ in range(600):
        if Path(out).exists() and Path(out).read_text().count("\n") >= 5:
            break
        time.sleep(0.1)
    baseline_from = time.time()
    time.sleep(args.baseline)
    samples: list[float] = []
    working = threading.Event()

    def sample() -> None:
        while not working.is_set():
            samples.append(rss_mb())
            time.sleep(0.1)

    rss_before, peak_before = rss_mb(), peak_mb()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    work_from = time.time()
    began = time.perf_counter()
    if args.purge:
        report = run_purge(run_id=big.pk)
    else:
        run_delete(run_id=big.pk)
        report = run_rows_delete(run_id=big.pk)
    took = time.perf_counter() - began
    work_to = time.time()
    working.set()
    sampler.join()
    time.sleep(1.0)
    Path(stop).touch()
    child.wait(timeout=30)

    rows = [line.split() for line in Path(out).read_text().splitlines()]
    base = [float(ms) for at, ms, _ in rows if baseline_from <= float(at) < work_from]
    during = [float(ms) for at, ms, _ in rows if work_from <= float(at) <= work_to]
    after = sizes()
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"VACUUM {table}")
    vacuumed = sizes()
    what = "purge" if args.purge else "delete"
    print(f"{what} of {args.blocks:,} blocks: {took:.1f} s ({json.dumps(report)})")
    print(
        f"resident set of the deleting process: {rss_before:.0f} MB before, {min(samples):.0f}-"
        f"{max(samples):.0f} MB while it worked, peak {peak_mb():.0f} MB (was {peak_before:.0f} MB)"
    )
    print(describe("claims before", base))
    print(describe("claims during", during))
    print(
        f"ratio during/before: p50 {statistics.median(during) / statistics.median(base):.2f}x, "
        f"p99 {percentile(during, 0.99) / percentile(base, 0.99):.2f}x, max {max(during) / max(base):.2f}x"
    )
    print(f"sizes after the {what}:    {mb(after)}")
    print(f"sizes after VACUUM:       {mb(vacuumed)}")
    if args.reuse:
        again = a_run("built again")
        insert_blocks(str(again.pk), args.blocks, status="succeeded")
        print(f"sizes with the same run built again after the VACUUM: {mb(sizes())}")
        Run.objects.filter(pk=again.pk).update(status="complete", deleting_at=timezone.now())
        run_rows_delete(run_id=again.pk)
    Path(out).unlink(missing_ok=True)
    Path(stop).unlink(missing_ok=True)
    if not args.keep:
        for run in (other, big):
            if Run.objects.filter(pk=run.pk).exists():
                Run.objects.filter(pk=run.pk).update(status="complete", deleting_at=timezone.now())
                run_rows_delete(run_id=run.pk)
        ProviderKey.objects.filter(owner=user).delete()
        user.delete()


if __name__ == "__main__":
    main()
