"""What the run commands (submit, runs, export, compare, in commands/) share: finding the user, key and
run that an argument names, checking settings with the API's own input serializers, turning every
refusal into one CommandError that names the option at fault, and behaving as a shell tool should
(`OperatorCommand`: quiet into a closed pipe, log lines only when asked for).
"""

import argparse
import contextlib
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, TextIO, cast

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from rest_framework import serializers

from apps.core.errors import InvalidInput
from apps.failures.models import PipelineFailure
from apps.keys.models import ProviderKey
from apps.runs.models import Run
from apps.runs.reporting.exports import FORMATS, failures_export, results_export
from apps.teams.models import Team
from config.api.errors import flatten_errors

# Settings whose command-line option is not simply --the-field-name.
OPTION_FOR_FIELD = {"system_prompt": "--system", "prompt_template": "--prompt", "cache": "--cache"}
# Fields of a block (a line of the file), never an option.
BLOCK_FIELDS = {"blocks", "input", "uid"}
_ESCAPE = re.compile(r"\\(\\|n|t)")
_ESCAPED = {"\\": "\\", "n": "\n", "t": "\t"}


class OperatorCommand(BaseCommand):
    """A command a person runs at a shell and reads. It says what it did itself, so the engine's log
    lines (a run "ended", at INFO) show only with `-v 2`; warnings always do. A reader that stops early
    (`runs show RUN | head`) ends it quietly, as any Unix tool ends, instead of with a BrokenPipeError
    traceback."""

    def execute(self, *args: Any, **options: Any) -> Any:
        root = logging.getLogger()
        level = root.level
        if options.get("verbosity", 1) < 2 and level < logging.WARNING:
            root.setLevel(logging.WARNING)
        try:
            return super().execute(*args, **options)
        except BrokenPipeError:
            stdout_closed()
            return None
        finally:
            root.setLevel(level)


def stdout_closed() -> None:
    """The reader of standard output went away: point it at /dev/null, so that the interpreter's last
    flush on the way out does not fail again (and print a second error)."""
    # stdout may not be a real file (a test's): then nothing will flush it on the way out.
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def at_least_one(value: str) -> int:
    """An argparse type for counts such as `--limit`: a whole number from 1 (0 or -1 used to show one
    row, silently)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def option_name(field: str) -> str:
    """`options.max_cost_usd` -> `--max-cost-usd`: how the person typed it."""
    name = field.rsplit(".", 1)[-1]
    return OPTION_FOR_FIELD.get(name, "--" + name.replace("_", "-"))


def refusal(exc: InvalidInput) -> CommandError:
    """A service's refusal as the command line says it, naming the option at fault as `validated`
    does: `--prompt (prompt_template): must contain {input}`. A line of the blocks file is named by
    its line (the error says it), not by an option."""
    if exc.field and exc.line is None and exc.field not in BLOCK_FIELDS:
        return CommandError(f"{option_name(exc.field)} ({exc.field}): {exc.message}")
    return CommandError(str(exc))


def validated(serializer_class: type[serializers.Serializer], data: dict[str, Any]) -> dict[str, Any]:
    """The API's input serializer over the command's options: the same checks, the same messages."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        problems = [f"{option_name(field)} ({field}): {' '.join(messages)}"
                    for field, messages in flatten_errors(serializer.errors).items()]
        raise CommandError("; ".join(problems))
    return dict(serializer.validated_data)


def text_option(value: str) -> str:
    """A prompt given on the command line: `@path` reads the file as it is; otherwise the escapes \\n,
    \\t and \\\\ are turned into a newline, a tab and a backslash (a shell passes them literally)."""
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise CommandError(f"no such file: {value[1:]}")
        return path.read_text(encoding="utf-8")
    return _ESCAPE.sub(lambda match: _ESCAPED[match.group(1)], value)


def json_option(value: str, *, option: str) -> Any:
    """A JSON value given on the command line: `@path` reads a file, anything else is the JSON itself."""
    source = "the value"
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise CommandError(f"{option}: no such file: {value[1:]}")
        source, value = str(path), path.read_text(encoding="utf-8")
    try:
        return json.loads(value)
    except (ValueError, RecursionError) as exc:
        raise CommandError(f"{option}: {source} is not valid JSON ({exc})") from None


def user_named(username: str) -> Any:
    User = get_user_model()
    user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
    if user is None:
        raise CommandError(f"no user {username!r}; create one with: uv run python manage.py "
                           f"createsuperuser --username {username}")
    return user


def key_of(user: Any, ref: str, team: Any = None) -> ProviderKey:
    """One of the user's personal keys (with `team`: one of the team's keys), by id or label."""
    keys = ProviderKey.objects.filter(team=team) if team is not None else ProviderKey.objects.filter(
        owner=user, team__isnull=True)
    key = (keys.filter(pk=int(ref)) if ref.isdigit() else keys.filter(label=ref)).first()
    if key is None:
        labels = ", ".join(keys.values_list("label", flat=True)) or "none yet: add one with add_key"
        raise CommandError(f"user {user.get_username()!r} has no key {ref!r} (their keys: {labels})")
    return key


def team_named(name: str | None) -> Any:
    """The team of that name (None: a personal run)."""
    if not name:
        return None
    team = Team.objects.filter(name=name).first()
    if team is None:
        raise CommandError(f"no team {name!r}")
    return team


def run_named(run_id: str) -> Run:
    try:
        run = Run.objects.select_related("owner", "key").filter(pk=run_id, deleting_at__isnull=True).first()
    except ValidationError:  # a malformed id reads as "no such run" too
        run = None
    if run is None:
        raise CommandError(f"no run {run_id}; list them with: uv run python manage.py runs list")
    return run


def add_export_arguments(parser: CommandParser) -> None:
    """What `export` and `runs export` take besides the run."""
    parser.add_argument("--format", choices=FORMATS, default="jsonl",
                        help="jsonl (default: one JSON object per block, as the API's results/), csv "
                             "(a header row, one flat row per block: a structured run's fields as "
                             "output.<field> columns, metadata as metadata.<key>) or parquet (the same, "
                             "typed; binary: --output FILE or a redirect)")
    parser.add_argument("--failures", action="store_true",
                        help="the run's failures (its dead-letter rows) instead of its results")
    parser.add_argument("--output", help="a file to write (default: standard output)")


def wrapped_stream(stream: OutputWrapper) -> TextIO:
    """The stream a command's stdout or stderr wraps (a progress line is written to it as it is)."""
    return cast(TextIO, stream._out)


def write_export(run: Run, out: TextIO | OutputWrapper, *, fmt: str = "jsonl", failures: bool = False,
                 output: str | None = None) -> None:
    """A run's results (or failures) in one of the export formats (apps/runs/reporting/exports.py),
    streamed to `output` (a file) or to `out` (standard output: its bytes, when it has them).

    A reader that stops early (`... | head`) ends the export quietly, as any Unix tool does."""
    target = getattr(out, "_out", out)  # a command's stdout wraps the real stream
    binary = getattr(target, "buffer", None)
    if fmt == "parquet" and output is None and binary is None:
        raise CommandError("Parquet is binary: write it to a file with --output FILE")
    chunks = failures_export(run, fmt) if failures else results_export(run, fmt)
    if output is not None:
        with open(output, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
        return
    try:
        for chunk in chunks:
            if binary is not None:
                binary.write(chunk)
            elif chunk:
                target.write(chunk.decode())
        (binary or target).flush()
    except BrokenPipeError:
        stdout_closed()


def exported(run: Run, *, failures: bool) -> str:
    """What an export to a file holds, for the line that says it was written."""
    if failures:
        return f"{PipelineFailure.objects.filter(run_id=run.pk).count():,} failure(s)"
    return f"the results of {run.total_blocks:,} block(s)"
