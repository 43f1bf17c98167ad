"""`manage.py export RUN_ID > results.jsonl`: the same as `manage.py runs export RUN_ID`."""

from typing import Any

from django.core.management.base import CommandParser

from apps.runs.management.commandline import OperatorCommand, run_named, write_results


class Command(OperatorCommand):
    help = "Write a run's results as JSONL to stdout: uid, status, output, error, usage."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id")

    def handle(self, *args: Any, **opts: Any) -> None:
        write_results(run_named(opts["run_id"]).pk, self.stdout)
