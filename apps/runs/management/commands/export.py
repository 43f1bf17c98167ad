"""`manage.py export RUN_ID [--format jsonl|csv|parquet] [--failures] [--output FILE]`: the same as
`manage.py runs export RUN_ID`."""

from typing import Any

from django.core.management.base import CommandParser

from apps.runs.management.commandline import (
    OperatorCommand,
    add_export_arguments,
    exported,
    run_named,
    write_export,
)


class Command(OperatorCommand):
    help = ("Write a run's results (or, with --failures, its failures) to stdout or --output: JSONL (uid, "
            "status, output, metadata, error, usage), CSV or Parquet.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id")
        add_export_arguments(parser)

    def handle(self, *args: Any, **opts: Any) -> None:
        run = run_named(opts["run_id"])
        write_export(run, self.stdout, fmt=opts["format"], failures=opts["failures"], output=opts["output"])
        if opts["output"]:
            self.stderr.write(f"{exported(run, failures=opts['failures'])} written to {opts['output']} "
                              f"({opts['format']})")
