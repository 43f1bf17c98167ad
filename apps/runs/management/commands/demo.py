"""The first command a new user runs: a whole run, end to end, with nothing installed but Python.

It uses whatever database is configured (SQLite by default), starts the bundled mock provider
in-process, and drives the engine in a thread of this process instead of a Celery worker
(`drive_engine_until_settled`, the only place that knows how), with the lanes in an in-process Redis.
Everything else (submission, claiming, lanes, retries, packing, caching, cost accounting) is the
production code path. The sample is graded against
a long rubric with caching and packing on, and the demo ends by saying what the newcomer saw: faults
injected on purpose, a cost that is simulated usage priced at real rates, and what caching and
packing saved against the same work uncached and unpacked (apps.runs.reporting.costs.run_savings).
"""

import asyncio
import threading
from pathlib import Path
from typing import Any

from celery import current_app as celery_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError, CommandParser
from django.db import close_old_connections

from apps.core.formatting import format_usd
from apps.core.ids import RunId
from apps.core.redis import embedded_redis
from apps.keys.models import ProviderKey
from apps.keys.services import key_create, key_update
from apps.providers.catalog import catalog
from apps.runs.management.commandline import OperatorCommand, wrapped_stream
from apps.runs.models import Run
from apps.runs.reporting.costs import run_savings
from apps.runs.reporting.progress import export_command, follow_run, summary
from apps.runs.selectors import run_call_counts
from apps.runs.services import SubmissionError, parse_jsonl, run_create
from apps.runs.serving.loop import ServingLoop
from apps.runs.transitions import RUN_SETTLED
from mock_provider.testing import running_mock

SAMPLES = Path(settings.BASE_DIR) / "samples"
SAMPLE = SAMPLES / "essays.jsonl"
RUBRIC = SAMPLES / "grading-rubric.md"
DEMO_SECRET = "demo-local-mock-key"
DEMO_RETRY_BASE_SECONDS = 0.5
TEMPLATE = "Grade this essay with the rubric: a score and one sentence of feedback.\n\nEssay:\n{input}"


def drive_engine_until_settled(run_id: RunId) -> None:
    """What a Celery worker would do, in this process: serving loops until the run settles."""
    try:
        while Run.objects.filter(pk=run_id).values_list("status", flat=True).get() not in RUN_SETTLED:
            asyncio.run(ServingLoop(worker="demo", slice_seconds=30, idle_exit_seconds=1).run())
    finally:
        close_old_connections()


class Command(OperatorCommand):
    help = "Run a sample batch through the pipeline against the bundled mock provider."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", default=str(SAMPLE), help="JSONL blocks (default: the sample)")
        parser.add_argument("--parallelism", type=int, default=20,
                            help="blocks in flight at once (20: four calls of five)")
        parser.add_argument("--pack-size", type=int, default=5, help="essays per call (1: no packing)")
        parser.add_argument("--no-cache", action="store_true", help="do not cache the rubric")
        parser.add_argument("--latency-ms", type=float, default=50.0)
        parser.add_argument("--fault-rate", type=float, default=0.05,
                            help="share of calls the mock fails with a 500, on purpose (retried)")

    def handle(self, *args: Any, **opts: Any) -> None:
        path = Path(opts["file"])
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        call_command("migrate", interactive=False, verbosity=0)
        # No broker needed: tasks queued by the services (the key's validation) run inline, and
        # the key may point at the local mock; the injected faults are retried after a short wait.
        # All of it is put back afterwards.
        eager, allowlist = celery_app.conf.task_always_eager, settings.PROVIDER_HOST_ALLOWLIST
        conveyor = settings.CONVEYOR
        celery_app.conf.task_always_eager = True
        settings.PROVIDER_HOST_ALLOWLIST = [*allowlist, "127.0.0.1"]
        settings.CONVEYOR = {**conveyor, "RETRY_BASE_SECONDS": DEMO_RETRY_BASE_SECONDS}
        try:
            with embedded_redis():
                run = self._demo(path, opts)
        finally:
            celery_app.conf.task_always_eager = eager
            settings.PROVIDER_HOST_ALLOWLIST = allowlist
            settings.CONVEYOR = conveyor
        if run is None:
            return
        self.stdout.write(summary(run))
        for block in run.blocks.order_by("block_index")[:3]:
            self.stdout.write(f"  {block.uid}: {block.output or block.error_code}")
        self.stdout.write(self._what_you_saw(run, opts))

    def _demo(self, path: Path, opts: dict[str, Any]) -> Run | None:
        faults = {"500": opts["fault_rate"]} if opts["fault_rate"] else {}
        with running_mock(api_keys=[DEMO_SECRET], latency_ms=opts["latency_ms"],
                          fault_rates=faults, seed=1) as mock:
            self.stdout.write(f"mock provider listening on {mock.base_url} (a stand-in for the API: "
                              "no key, no network, no charge)")
            run = self._submit(path, mock.base_url, opts)
            self.stdout.write(f"submitted run {run.pk}: {run.total_blocks} blocks, {run.model}, "
                              f"{run.options['pack_size']} per call, caching "
                              f"{'on' if run.options['cache'] else 'off'}")
            worker = threading.Thread(target=drive_engine_until_settled, args=(run.pk,), daemon=True)
            worker.start()
            followed = follow_run(run.pk, out=wrapped_stream(self.stderr), detach_line=(
                "Interrupted: the demo's in-process worker stops with this command, so the run stops "
                "here (under a real worker it would go on)."))
            if followed.detached:
                return None
            worker.join(30)
        return followed.run

    def _submit(self, path: Path, base_url: str, opts: dict[str, Any]) -> Run:
        user, _ = get_user_model().objects.get_or_create(username="demo")
        key = ProviderKey.objects.filter(owner=user, label="demo-mock").first()
        if key is None:
            key = key_create(owner=user, label="demo-mock", secret=DEMO_SECRET, base_url=base_url)
        else:
            key = key_update(key=key, base_url=base_url, secret=DEMO_SECRET)
        system = ("You are a careful teacher grading short student essays.\n\n"
                  + RUBRIC.read_text(encoding="utf-8"))
        options = {"cache": not opts["no_cache"], "cache_ttl": "5m", "pack_size": opts["pack_size"],
                   "stream": False}
        with path.open("rb") as source:
            try:
                return run_create(
                    owner=user, key=key, blocks=parse_jsonl(source), model=catalog().default_model,
                    system_prompt=system, prompt_template=TEMPLATE, max_tokens=1000,
                    parallelism=opts["parallelism"], options=options, name=f"demo: {path.name}",
                    dispatch=False,
                )
            except SubmissionError as exc:
                raise CommandError(str(exc)) from None

    @staticmethod
    def _what_you_saw(run: Run, opts: dict[str, Any]) -> str:
        calls = run_call_counts(run_id=run.pk)
        savings = run_savings(run)
        model = catalog().get(run.model)
        assert model is not None  # the demo runs the catalog's default model
        lines = [
            "",
            "What you just saw",
            f"  - The provider was the bundled mock, not Anthropic's API. It failed "
            f"{opts['fault_rate']:.0%} of calls with a 500 on purpose (--fault-rate) to show retries: "
            f"{calls['not_succeeded']} of {calls['calls']} calls failed, and their blocks were tried "
            f"again, up to {run.max_attempts} attempts each"
            + (f"; {run.failed_blocks} blocks failed every attempt (see the failures line above)."
               if run.failed_blocks else "."),
            f"  - The cost is the mock's simulated token usage priced at {run.model}'s real rates from "
            f"the catalog (${model.input}/${model.output} per million input/output tokens); nothing "
            "was charged.",
            f"  - Up to {run.options['pack_size']} essays went in each call (packing: the rubric is "
            "sent once per call, not once per essay), and the rubric was cached: written by the first "
            "calls (at 1.25 times the input price), read back by the later ones (at a tenth). Together "
            f"{run.cache_creation_input_tokens:,} tokens written and {run.cache_read_input_tokens:,} "
            "read. Priced from the recorded usage:",
            f"      this run                        {format_usd(savings.cost_usd):>10}",
            f"      the same calls without caching  {format_usd(savings.uncached_usd):>10}"
            f"   caching saved {format_usd(savings.caching_saved_usd)}",
            f"      ... and one essay per call      {format_usd(savings.unpacked_uncached_usd):>10}"
            f"   packing saved {format_usd(savings.packing_saved_usd)}",
        ]
        if not savings.packing_measured:
            lines.append("      (nothing was cached, so packing's saving cannot be measured from the "
                         "usage)")
        lines += ["", f"All results: {export_command(run.pk)}"]
        database = settings.DATABASES["default"]
        if database["ENGINE"].endswith("sqlite3"):
            lines.append(f"(from the demo's database, {database['NAME']}: run the export where DATABASE_URL "
                         "is not set, as here)")
        return "\n".join(lines)
