"""Time and memory of exporting a run of 1,000,000 structured blocks with metadata as CSV (and JSONL or
Parquet) through the real API (GET /api/v1/runs/{id}/results/?format=csv).

    uv run python scripts/measure_export.py [--blocks 1000000] [--formats csv,parquet,jsonl] [--keep]

The blocks are written straight into PostgreSQL with one INSERT ... SELECT over generate_series (each
succeeded, with a document of the run's schema and its own metadata), so that building them costs
seconds; the export then goes through Django's WSGI handler in this process, and its body is read
chunk by chunk and dropped, as a server hands it to a client. Memory is the process's resident set
(VmRSS), sampled every 50 chunks while the body streams, and its peak (ru_maxrss): flat memory means the
resident set stays where it was after the first chunks, whatever the row count.
Needs PostgreSQL (DATABASE_URL, default: a local `conveyor_outputs_big` database, created and migrated
if missing). The user, key and run it creates are deleted at the end unless --keep.
"""

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Before measure_upload is imported: it sets its own defaults the same way.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/conveyor_outputs_big")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from scripts.bench_db import ensure_database  # noqa: E402  (needs ROOT on the path)
from scripts.bench_meter import peak_mb, rss_mb  # noqa: E402
from scripts.measure_upload import wsgi_environ  # noqa: E402

if TYPE_CHECKING:
    from apps.runs.models import Run

os.environ["DEBUG"] = "false"  # DEBUG keeps every SQL statement in memory

SCHEMA = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string", "description": "who sent the invoice"},
        "total": {"type": "number"},
        "currency": {"enum": ["EUR", "USD"]},
        "paid": {"type": "boolean"},
        "contact": {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
                    "required": ["name", "email"], "additionalProperties": False},
        "lines": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["vendor", "total", "currency", "paid", "contact", "lines"],
    "additionalProperties": False,
}


SAMPLE_SECONDS = 0.25


def insert_blocks(run: "Run", blocks: int) -> None:
    """`blocks` succeeded blocks of `run`, written by PostgreSQL itself."""
    from django.db import connection

    from apps.runs.models import Block

    generated = {
        "run_id": "%(run)s::uuid", "block_index": "i", "uid": "'inv-' || i",
        "input": "'Invoice ' || i || ' from supplier ' || mod(i, 977) || ', total ' || mod(i, 5000) "
                 "|| ' euros.'",
        "metadata": "jsonb_build_object('record_id', 100000 + i, 'source', 'inbox ' || mod(i, 7), "
                    "'priority', mod(i, 3) = 0, 'tags', jsonb_build_array('march', 'batch-' || mod(i, 10)))",
        "status": "'succeeded'",
        "output_json": "jsonb_build_object('vendor', 'Supplier ' || mod(i, 977), 'total', "
                       "mod(i, 5000) + 0.5, "
                       "'currency', 'EUR', 'paid', mod(i, 2) = 0, 'contact', jsonb_build_object('name', "
                       "'Clerk ' || mod(i, 31), 'email', 'clerk' || mod(i, 31) || '@example.com'), 'lines', "
                       "jsonb_build_array('line one', 'line two'))",
        "output": "'{\"vendor\": \"Supplier ' || mod(i, 977) || '\"}'",
        "attempts": "1", "pass_attempts": "1", "input_tokens": "40", "output_tokens": "60",
        "cost_usd": "0.00034", "created_at": "now()", "finished_at": "now()",
    }
    columns, values, params = [], [], {"run": str(run.pk)}
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
    sql = (f"INSERT INTO {Block._meta.db_table} ({', '.join(columns)}) "
           f"SELECT {', '.join(values)} FROM generate_series(0, {blocks - 1}) AS i")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    type(run).objects.filter(pk=run.pk).update(total_blocks=blocks, completed_blocks=blocks)


def stream_export(path: str, query: str, token: str) -> tuple[str, int, list[float], float]:
    """One GET through the WSGI application, its body consumed chunk by chunk: status, bytes, the
    resident set sampled every SAMPLE_SECONDS, and the time."""
    from config.wsgi import application

    status: list[str] = []
    environ = wsgi_environ("GET", path, token=token, query=query)
    started = time.perf_counter()
    result = application(environ, lambda s, headers, exc_info=None: status.append(s))  # type: ignore[arg-type]
    size, samples, sampled = 0, [], started
    for chunk in result:
        size += len(chunk)
        if time.perf_counter() - sampled >= SAMPLE_SECONDS:
            samples.append(rss_mb())
            sampled = time.perf_counter()
    if hasattr(result, "close"):
        result.close()
    return status[0], size, samples, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=1_000_000)
    parser.add_argument("--formats", default="csv", help="comma-separated: csv, parquet, jsonl")
    parser.add_argument("--keep", action="store_true", help="keep the run (measure again with --run)")
    parser.add_argument("--run", help="export this run of an earlier --keep instead of making one")
    args = parser.parse_args()

    ensure_database()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    import apps.runs.services.submission as submission
    from apps.accounts.services import token_create
    from apps.core.crypto import encrypt_secret
    from apps.keys.models import ProviderKey
    from apps.runs.models import Run
    from apps.runs.services import BlockSpec, run_create

    call_command("migrate", verbosity=0)
    submission.run_dispatch_on_commit = lambda **kwargs: None  # type: ignore[attr-defined]  # wake no worker
    if args.run:
        run = Run.objects.select_related("owner").get(pk=args.run)
        user = run.owner
    else:
        user = get_user_model().objects.create_user(f"measure-{uuid.uuid4().hex[:8]}")
        key = ProviderKey.objects.create(owner=user, label="measure", suffix="test", is_valid=True,
                                         secret_ciphertext=encrypt_secret("sk-ant-measure-test"))
        run = run_create(owner=user, key=key, model="claude-haiku-4-5", name="measure export",
                         blocks=[BlockSpec(uid="seed", input="seed")], output_schema=SCHEMA, dispatch=False)
        run.blocks.all().delete()
        started = time.perf_counter()
        insert_blocks(run, args.blocks)
        print(f"inserted {args.blocks:,} blocks in {time.perf_counter() - started:.1f} s")
        run.refresh_from_db()
    try:
        token = token_create(user=user).token
        for fmt in args.formats.split(","):
            before, peak_before = rss_mb(), peak_mb()
            status, size, samples, elapsed = stream_export(f"/api/v1/runs/{run.pk}/results/",
                                                           f"format={fmt}", token)
            steady = samples[len(samples) // 10:] or samples or [rss_mb()]
            print(f"{fmt}: {status}, {run.total_blocks:,} rows, {size / 2**20:,.1f} MB in {elapsed:.1f} s "
                  f"({run.total_blocks / elapsed:,.0f} rows/s); resident set {before:.0f} MB before, "
                  f"{min(steady):.0f}-{max(steady):.0f} MB while streaming (after the first tenth), "
                  f"peak {peak_mb():.0f} MB (was {peak_before:.0f} MB)")
    finally:
        if not args.keep and not args.run:
            Run.objects.filter(owner=user).delete()
            user.delete()
        elif args.keep:
            print(f"kept run {run.pk}: measure again with --run {run.pk}")


if __name__ == "__main__":
    main()
