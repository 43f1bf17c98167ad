"""`manage.py pipeline submit SPEC ITEMS --user U [--key K] [--follow]`, `pipeline show ID`, and
`pipeline cancel|pause|resume ID [--step NAME]` (the whole pipeline, or one step's run), and
`pipeline reseed ID --step NAME [--scope all|failed|filter] [--pipeline-version V ...]`.

SPEC is a YAML (or JSON) file: `{name, key: <id or label>, steps: [...]}` (docs/pipelines.md), each
step as the API takes it (a run's settings plus `name`, `input`, `filter`, `fan_out`, `gather`); ITEMS
is JSONL, one item per line, as a run's blocks. Both are checked as the API checks them, and nothing
is created if anything is wrong."""

import time
import uuid
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from apps.core.errors import InvalidInput, StateConflict
from apps.pipelines.models import ItemStatus, Pipeline, PipelineStep
from apps.pipelines.selectors import pipeline_rollup
from apps.pipelines.services.control import (
    ACTIONS,
    pipeline_cancel,
    pipeline_pause,
    pipeline_resume,
    pipeline_step_act,
)
from apps.pipelines.services.creation import pipeline_create
from apps.pipelines.services.reseed import pipeline_reseed_step
from apps.pipelines.specs import spec_load, spec_steps
from apps.pipelines.transitions import PIPELINE_ENDED
from apps.runs.management.commandline import OperatorCommand, key_of, user_named
from apps.runs.services import parse_jsonl


class Command(OperatorCommand):
    help = "Submit a pipeline (a JSON spec of steps and a JSONL file of items), or show one."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        submit = actions.add_parser("submit", help="create a pipeline from a spec and items")
        submit.add_argument("spec", help="YAML or JSON: name, key, steps (docs/pipelines.md)")
        submit.add_argument("items", help="JSONL: one item per line, {uid?, input, metadata?}")
        submit.add_argument("--user", required=True, help="username of the pipeline's owner")
        submit.add_argument("--key", help="the owner's provider key, id or label (else the spec's)")
        submit.add_argument("--follow", action="store_true", help="show each step's progress until it ends")
        show = actions.add_parser("show", help="a pipeline's steps and items by where they are")
        show.add_argument("pipeline_id")
        show.add_argument("--follow", action="store_true")
        reseed = actions.add_parser("reseed", help="reseed one step; its items go through later steps again")
        reseed.add_argument("pipeline_id")
        reseed.add_argument("--step", required=True)
        reseed.add_argument("--scope", choices=["all", "failed", "filter"], default="all")
        for name in ("status", "error-code", "prompt-version", "pipeline-version", "model"):
            reseed.add_argument(f"--{name}")
        reseed.add_argument("--follow", action="store_true")
        for action in ACTIONS:
            act = actions.add_parser(action, help=f"{action} the whole pipeline, or one step (--step)")
            act.add_argument("pipeline_id")
            act.add_argument("--step", help="the step's name: act on its run only")
            act.add_argument("--follow", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "submit":
            pipeline = self.submit(options)
        else:
            try:
                found = Pipeline.objects.filter(pk=uuid.UUID(options["pipeline_id"])).first()
            except ValueError:
                found = None
            if found is None:
                raise CommandError(f"no pipeline {options['pipeline_id']}")
            pipeline = found
            if options["action"] in ACTIONS:
                self.act(pipeline, options["action"], step=options["step"])
            elif options["action"] == "reseed":
                self.reseed(pipeline, options)
        self.show(pipeline, follow=options["follow"])

    def reseed(self, pipeline: Pipeline, options: dict[str, Any]) -> None:
        changes = {name: options[name] for name in ("status", "error_code", "prompt_version",
                                                    "pipeline_version", "model") if options[name]}
        try:
            pipeline_reseed_step(pipeline_id=pipeline.pk, step_name=options["step"], scope=options["scope"],
                                 **changes)
        except (StateConflict, InvalidInput) as exc:
            raise CommandError(exc.message) from None
        except PipelineStep.DoesNotExist:
            raise CommandError(f"the pipeline has no step {options['step']!r}") from None

    def act(self, pipeline: Pipeline, action: str, *, step: str | None) -> None:
        try:
            if step:
                pipeline_step_act(pipeline_id=pipeline.pk, step_name=step, action=action)
            elif action == "cancel":
                pipeline_cancel(pipeline_id=pipeline.pk)
            elif action == "pause":
                pipeline_pause(pipeline_id=pipeline.pk)
            else:
                _, refused = pipeline_resume(pipeline_id=pipeline.pk)
                for name, reason in refused.items():
                    self.stdout.write(f"step {name} stays paused: {reason}")
        except StateConflict as exc:
            raise CommandError(exc.message) from None
        except PipelineStep.DoesNotExist:
            raise CommandError(f"the pipeline has no step {step!r}") from None

    def submit(self, options: dict[str, Any]) -> Pipeline:
        spec_path, items_path = Path(options["spec"]), Path(options["items"])
        for path in (spec_path, items_path):
            if not path.is_file():
                raise CommandError(f"no such file: {path}")
        try:
            spec = spec_load(spec_path.read_bytes())
            steps = spec_steps(spec)
        except InvalidInput as exc:
            raise CommandError(f"{spec_path}: {exc.field}: {exc.message}") from None
        user = user_named(options["user"])
        key_ref = options["key"] or spec.get("key")
        if key_ref is None:
            raise CommandError("which key? give --key, or \"key\" in the spec")
        key = key_of(user, str(key_ref))
        try:
            with items_path.open("rb") as lines:
                pipeline = pipeline_create(owner=user, key=key, name=str(spec.get("name", "")),
                                           steps=steps, items=parse_jsonl(lines))
        except InvalidInput as exc:
            where = f"{exc.field}: " if exc.field and exc.line is None else ""
            raise CommandError(f"{where}{exc}") from None
        except StateConflict as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"pipeline {pipeline.pk}: {pipeline.total_items} item(s) in "
                          f"{pipeline.steps.count()} step(s)")
        return pipeline

    def show(self, pipeline: Pipeline, *, follow: bool) -> None:
        try:
            while True:
                pipeline.refresh_from_db()
                rollup = pipeline_rollup(pipeline)
                items = ", ".join(f"{n} {status}" for status, n in rollup["items"].items()
                                  if n or status != ItemStatus.FANNED_OUT)
                self.stdout.write(f"{pipeline.status}: items {items}; ${rollup['cost_usd']:.4f}")
                for s in rollup["steps"]:
                    self.stdout.write(f"  {s['position']}. {s['name']:<16} {s['status']:<9} "
                                      f"{s['completed_blocks']} ok, {s['failed_blocks']} failed of "
                                      f"{s['total_blocks']} (run {s['run_id']})")
                if not follow or pipeline.status in PIPELINE_ENDED:
                    return
                time.sleep(1.0)
        except KeyboardInterrupt:
            self.stdout.write(f"(the pipeline goes on: manage.py pipeline show {pipeline.pk} --follow)")
