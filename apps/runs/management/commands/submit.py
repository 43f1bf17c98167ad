"""`manage.py submit FILE --user U --key K [settings] [--follow]`: a run from a JSONL file.

Its settings go through the API's input serializer (RunSettingsInputSerializer), so a bad value is
refused exactly as the API refuses it, naming the option, and nothing is created."""

import io
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.management.base import CommandError, CommandParser

from apps.core.errors import StateConflict
from apps.providers.catalog import catalog
from apps.runs.caching import settings_warnings
from apps.runs.management.commandline import (
    OperatorCommand,
    json_option,
    key_of,
    refusal,
    team_named,
    text_option,
    user_named,
    validated,
    wrapped_stream,
)
from apps.runs.reporting.progress import describe_estimate, follow_command, follow_run, summary
from apps.runs.serializers.inputs import RunSettingsInputSerializer, stored_options
from apps.runs.services import SubmissionError, parse_jsonl, run_create
from apps.runs.services.submission import run_preflight

# option -> the serializer's field; only the options given are passed, so the API's defaults apply.
SETTINGS = {"model": "model", "name": "name", "max_tokens": "max_tokens",
            "max_attempts": "max_attempts", "parallelism": "parallelism", "priority": "priority",
            "temperature": "temperature", "mode": "mode", "deadline": "deadline",
            "webhook_url": "webhook_url"}
OPTIONS = {"pack_size": "pack_size", "cache_ttl": "cache_ttl", "max_cost_usd": "max_cost_usd",
           "fallback_overload_seconds": "fallback_overload_seconds"}


class Command(OperatorCommand):
    help = ('Submit a run from a JSONL file: one block per line, {"uid"?: str, "input": str, "metadata"?: '
            "{...}}. Settings are checked as the API checks them.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="JSONL file, or - for standard input")
        parser.add_argument("--user", required=True, help="username of the run's owner")
        parser.add_argument("--key", required=True, action="append",
                            help="the owner's provider key: id or label; repeat it for a pool of keys "
                                 "(calls spread over them; a key refused leaves the pool)")
        parser.add_argument("--model", default=catalog().default_model,
                            help=f"a model from the catalog (default {catalog().default_model})")
        parser.add_argument("--fallback-model", action="append", dest="fallback_models",
                            help="a model a block moves on to when the one it is on cannot serve it "
                                 "(repeat, in order)")
        parser.add_argument("--fallback-overload-seconds",
                            help="how long a block may meet overload (529) before it moves on (300)")
        parser.add_argument("--fallback-on-invalid-output", action="store_true",
                            help="move a block on when its answers failed the output checks every time")
        parser.add_argument("--fallback-in-batch", action="store_true",
                            help="in batch mode too, a block moves on to the next model (else batches "
                                 "use the primary model only)")
        parser.add_argument("--system", default="",
                            help=r"system prompt; \n, \t and \\ are read as newline, tab and backslash; "
                                 "@path reads a file as it is")
        parser.add_argument("--prompt", default="{input}",
                            help=r"prompt template; {input} is replaced by each block; \n, \t and \\ are "
                                 "read as newline, tab and backslash; @path reads a file as it is")
        parser.add_argument("--name")
        parser.add_argument("--max-tokens", help="output tokens per call (at most the model's limit)")
        parser.add_argument("--max-attempts")
        parser.add_argument("--parallelism", help="blocks in calls at once")
        parser.add_argument("--mode", help="live (default), batch (Message Batches: half price, within a "
                            "day) or auto (batch when --deadline is a day or more away)")
        parser.add_argument("--deadline", help="when the results are needed by (ISO 8601), for --mode auto")
        parser.add_argument("--priority", help="1 to 10 (default 5): weight against your other runs "
                            "when capacity is short")
        parser.add_argument("--temperature")
        parser.add_argument("--pack-size", help="blocks sent together in one call (1 to 50)")
        parser.add_argument("--cache", action="store_true", help="mark the stable prefix cacheable")
        parser.add_argument("--cache-ttl", help="5m (default) or 1h")
        parser.add_argument("--stream", action="store_true", help="stream replies (with fallback)")
        parser.add_argument("--max-cost-usd", help="pause the run once it has cost this much")
        parser.add_argument("--output-schema",
                            help="a JSON Schema each block's answer must be a document of (structured "
                                 "outputs): @path reads a file, else the JSON itself")
        parser.add_argument("--webhook-url", help="POST a signed run.finished event here when each pass "
                            "ends (https, public host; create your secret first: manage.py "
                            "webhook_secret --user U --rotate)")
        parser.add_argument("--team", help="the team the run is for (the user must be its admin or member; "
                            "--key then names one of the team's keys)")
        parser.add_argument("--follow", action="store_true", help="show progress until it settles")
        parser.add_argument("--estimate", action="store_true",
                            help="print what the run would take (tokens, cost range) and submit nothing")

    def handle(self, *args: Any, **opts: Any) -> None:
        user = user_named(opts["user"])
        team = team_named(opts["team"])
        keys = [key_of(user, name, team) for name in opts["key"]]
        if len({key.pk for key in keys}) != len(keys):
            raise CommandError("--key: the same key is named twice")
        settings = self._settings(keys[0].pk, opts)
        source = self._open(opts["file"])
        if opts["estimate"]:
            try:
                estimate = run_preflight(blocks=parse_jsonl(source), **settings)
            except SubmissionError as exc:
                raise refusal(exc) from None
            finally:
                source.close()
            self.stdout.write(describe_estimate(estimate))
            self._warn(settings_warnings(blocks=estimate.blocks, **settings))
            return
        try:
            run = run_create(owner=user, team=team, keys=keys, blocks=parse_jsonl(source), **settings)
        except SubmissionError as exc:
            raise refusal(exc) from None
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None
        except StateConflict as exc:
            raise CommandError(str(exc)) from None
        finally:
            source.close()
        self.stdout.write(f"submitted run {run.pk} with {run.total_blocks} blocks")
        self._warn(run.warnings)
        if opts["follow"]:
            followed = follow_run(run.pk, out=wrapped_stream(self.stderr))
            if not followed.detached:
                self.stdout.write(summary(followed.run))
        else:
            self.stdout.write(f"follow it with: {follow_command(run.pk)}")

    def _warn(self, warnings: list[dict[str, Any]]) -> None:
        for warning in warnings:
            self.stdout.write(self.style.WARNING(f"warning: {warning['message']}"))

    @staticmethod
    def _settings(key_id: int, opts: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {"key": key_id, "system_prompt": text_option(opts["system"]),
                                "prompt_template": text_option(opts["prompt"])}
        data.update({field: opts[option] for option, field in SETTINGS.items() if opts[option] is not None})
        if opts["output_schema"] is not None:
            data["output_schema"] = json_option(opts["output_schema"], option="--output-schema")
        options: dict[str, Any] = {field: opts[option] for option, field in OPTIONS.items()
                                   if opts[option] is not None}
        options.update({flag: True for flag in ("cache", "stream", "fallback_on_invalid_output",
                                                         "fallback_in_batch")
                        if opts[flag]})
        if opts["fallback_models"]:
            data["fallback_models"] = opts["fallback_models"]
        if options:
            data["options"] = options
        checked = validated(RunSettingsInputSerializer, data)
        checked.pop("key")
        checked.pop("team", None)
        checked["options"] = stored_options(checked.get("options"))
        return checked

    def _open(self, name: str) -> io.BufferedReader:
        if name == "-":
            return sys.stdin.buffer  # type: ignore[return-value]
        path = Path(name)
        if not path.is_file():
            raise CommandError(f"no such file: {name}")
        return path.open("rb")
