"""Time and memory of creating a run from a JSONL upload of 100,000 blocks through the real API
(multipart POST /api/v1/runs/), and of streaming its results back (GET .../results/).

    uv run python scripts/measure_upload.py [--blocks 100000] [--input-chars 200]

The request goes through Django's WSGI handler in this process, its body read from a file on disk
(as a server would hand it over), so what is measured is the server side only. Each measurement is
made twice: once plainly for the time and the process's peak RSS, once under tracemalloc for the peak
of Python allocations during the request (tracemalloc slows the code, so its time is not reported).
Needs PostgreSQL (DATABASE_URL, default: a local `conveyor_measure` database, created and migrated if
missing). Nothing is dispatched to workers; the user, key and runs it creates are deleted at the end.
"""

import argparse
import io
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_db import ensure_database  # noqa: E402  (needs ROOT on the path)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/conveyor_measure")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# DEBUG keeps every SQL statement in memory, which would be measured as the upload's.
os.environ["DEBUG"] = "false"
BOUNDARY = "conveyor-measure-boundary"


def write_multipart(path: Path, *, fields: dict[str, str], blocks: int, input_chars: int) -> int:
    """The request body as a client would send it, written to disk line by line."""
    filler = ("lorem ipsum dolor sit amet " * (input_chars // 27 + 1))[:input_chars]
    with path.open("wb") as out:
        for name, value in fields.items():
            out.write(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                      f"{value}\r\n".encode())
        out.write(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
                  f'filename="blocks.jsonl"\r\nContent-Type: application/x-ndjson\r\n\r\n'.encode())
        for i in range(blocks):
            out.write(json.dumps({"uid": f"doc-{i}", "input": f"{i} {filler}"}).encode() + b"\n")
        out.write(f"\r\n--{BOUNDARY}--\r\n".encode())
    return path.stat().st_size


def wsgi_environ(method: str, path: str, *, token: str, query: str = "", body: Path | None = None,
                 content_type: str = "", stream: Any = None) -> dict[str, Any]:
    """What a WSGI server hands the application for one request (its body read from `stream`)."""
    return {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "HTTP_HOST": "localhost", "wsgi.url_scheme": "http",
        "wsgi.input": stream if stream is not None else io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(body.stat().st_size) if body else "0",
        "HTTP_AUTHORIZATION": f"Token {token}",
    }


def wsgi_call(method: str, path: str, *, token: str, body: Path | None = None,
              content_type: str = "") -> tuple[str, int]:
    """One request through the WSGI application; returns its status and the size of its body."""
    from config.wsgi import application

    status: list[str] = []
    stream = body.open("rb") if body else io.BytesIO(b"")
    environ = wsgi_environ(method, path, token=token, body=body, content_type=content_type, stream=stream)
    try:
        result = application(environ, lambda s, headers, exc_info=None: status.append(s))  # type: ignore[arg-type]
        size = sum(len(chunk) for chunk in result)
        if hasattr(result, "close"):
            result.close()
    finally:
        stream.close()
    return status[0], size


def measure(label: str, call: Callable[[], tuple[str, int]], *, traced: Callable[[], Any]) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    status, size = call()
    elapsed = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    traced()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{label}: {status}, {size:,} bytes answered, {elapsed:.2f} s; "
          f"peak RSS {rss_after / 1024:.0f} MB (was {rss_before / 1024:.0f} MB before); "
          f"peak Python allocations during the request {peak / 2**20:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=100_000)
    parser.add_argument("--input-chars", type=int, default=200)
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

    call_command("migrate", verbosity=0)
    submission.run_dispatch_on_commit = lambda **kwargs: None  # type: ignore[attr-defined]  # measure the upload, wake no worker
    user = get_user_model().objects.create_user(f"measure-{uuid.uuid4().hex[:8]}")
    try:
        token = token_create(user=user).token
        key = ProviderKey.objects.create(owner=user, label="measure", suffix="test", is_valid=True,
                                         secret_ciphertext=encrypt_secret("sk-ant-measure-test"))
        fields = {"key": str(key.pk), "model": "claude-haiku-4-5", "name": "measure"}
        with tempfile.TemporaryDirectory() as tmp:
            body = Path(tmp) / "body"
            size = write_multipart(body, fields=fields, blocks=args.blocks, input_chars=args.input_chars)
            print(f"upload: {args.blocks:,} blocks, {size / 2**20:.1f} MB of multipart body")

            def create() -> tuple[str, int]:
                return wsgi_call("POST", "/api/v1/runs/", token=token, body=body,
                                 content_type=f"multipart/form-data; boundary={BOUNDARY}")

            measure("create (upload)", create, traced=create)
            run = Run.objects.filter(owner=user).order_by("created_at").first()
            assert run is not None and run.total_blocks == args.blocks, "the upload did not create the run"

            def export() -> tuple[str, int]:
                return wsgi_call("GET", f"/api/v1/runs/{run.pk}/results/", token=token)

            measure("results (export)", export, traced=export)
    finally:
        Run.objects.filter(owner=user).delete()
        user.delete()


if __name__ == "__main__":
    main()
