import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.runs.models import Run
from apps.runs.selectors import run_results


class Command(BaseCommand):
    help = "Write a run's results as JSONL to stdout: uid, status, output, error, usage."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            exists = Run.objects.filter(pk=opts["run_id"]).exists()
        except ValidationError:
            exists = False
        if not exists:
            raise CommandError(f"no run {opts['run_id']}")
        for row in run_results(run_id=opts["run_id"]):
            self.stdout.write(json.dumps(row, ensure_ascii=False))
