"""The first command a new user runs: a whole run, end to end, with nothing installed but Python.

It uses whatever database is configured (SQLite by default), starts the bundled mock provider
in-process, and drains the run in a thread of this process instead of a Celery worker. Everything
else (submission, claiming, retries, cost accounting) is the production code path.
"""

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from apps.keys.models import ProviderKey
from apps.keys.services import key_create, key_update
from apps.providers.catalog import catalog
from apps.runs.models import Run
from apps.runs.progress import follow_run, summary
from apps.runs.services import SubmissionError, parse_jsonl, run_create
from apps.runs.services.drain import drain_run
from apps.runs.transitions import RUN_SETTLED
from config.celery_app import app as celery_app
from mock_provider.testing import running_mock

SAMPLE = Path(settings.BASE_DIR) / "samples" / "essays.jsonl"
DEMO_SECRET = "demo-local-mock-key"
SYSTEM = "You are a careful teacher grading short student essays."
TEMPLATE = "Grade this essay from 1 to 10 and give one sentence of feedback.\n\nEssay:\n{input}"


class Command(BaseCommand):
    help = "Run a sample batch through the pipeline against the bundled mock provider."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", default=str(SAMPLE), help="JSONL blocks (default: sample)")
        parser.add_argument("--parallelism", type=int, default=8)
        parser.add_argument("--latency-ms", type=float, default=50.0)
        parser.add_argument("--fault-rate", type=float, default=0.05,
                            help="share of calls the mock fails with a 500 (retried)")

    def handle(self, *args: Any, **opts: Any) -> None:
        path = Path(opts["file"])
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        call_command("migrate", interactive=False, verbosity=0)
        # No broker needed: tasks queued by the services (the key's validation) run inline, and
        # the key may point at the local mock. Both are put back afterwards.
        eager, allowlist = celery_app.conf.task_always_eager, settings.PROVIDER_HOST_ALLOWLIST
        celery_app.conf.task_always_eager = True
        settings.PROVIDER_HOST_ALLOWLIST = [*allowlist, "127.0.0.1"]
        try:
            run = self._demo(path, opts)
        finally:
            celery_app.conf.task_always_eager = eager
            settings.PROVIDER_HOST_ALLOWLIST = allowlist
        self.stdout.write(summary(run))
        for block in run.blocks.order_by("block_index")[:3]:
            self.stdout.write(f"  {block.uid}: {block.output or block.error_code}")
        self.stdout.write(f"\nAll results: python manage.py export {run.pk}")

    def _demo(self, path: Path, opts: dict[str, Any]) -> Run:
        faults = {"500": opts["fault_rate"]} if opts["fault_rate"] else {}
        with running_mock(api_keys=[DEMO_SECRET], latency_ms=opts["latency_ms"],
                          fault_rates=faults, seed=1) as mock:
            self.stdout.write(f"mock provider listening on {mock.base_url}")
            run = self._submit(path, mock.base_url, opts["parallelism"])
            self.stdout.write(f"submitted run {run.pk}: {run.total_blocks} blocks, {run.model}")
            worker = threading.Thread(target=self._drain, args=(run.pk,), daemon=True)
            worker.start()
            run = follow_run(run.pk, out=sys.stderr).run
            worker.join(30)
        return run

    def _submit(self, path: Path, base_url: str, parallelism: int) -> Run:
        user, _ = get_user_model().objects.get_or_create(username="demo")
        key = ProviderKey.objects.filter(owner=user, label="demo-mock").first()
        if key is None:
            key = key_create(owner=user, label="demo-mock", secret=DEMO_SECRET, base_url=base_url)
        else:
            key = key_update(key=key, base_url=base_url, secret=DEMO_SECRET)
        with path.open("rb") as source:
            try:
                return run_create(
                    owner=user, key=key, blocks=parse_jsonl(source), model=catalog().default_model,
                    system_prompt=SYSTEM, prompt_template=TEMPLATE, max_tokens=300,
                    parallelism=parallelism, name=f"demo: {path.name}", dispatch=False,
                )
            except SubmissionError as exc:
                raise CommandError(str(exc)) from None

    @staticmethod
    def _drain(run_id: Any) -> None:
        """What a Celery worker would do, in a thread: drain slices until the run settles."""
        try:
            while Run.objects.filter(pk=run_id).values_list("status", flat=True).get() not in RUN_SETTLED:
                asyncio.run(drain_run(run_id, slice_seconds=30))
        finally:
            close_old_connections()
