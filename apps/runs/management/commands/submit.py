import io
import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.keys.models import ProviderKey
from apps.providers.catalog import catalog
from apps.runs.progress import follow_run, summary
from apps.runs.services import SubmissionError, parse_jsonl, run_create


class Command(BaseCommand):
    help = "Submit a run from a JSONL file: one block per line, {\"uid\"?: str, \"input\": str}."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="JSONL file, or - for standard input")
        parser.add_argument("--user", required=True, help="username of the run's owner")
        parser.add_argument("--key", required=True, help="the owner's provider key: id or label")
        parser.add_argument("--model", default=catalog().default_model)
        parser.add_argument("--system", default="", help="system prompt (or @path to read it)")
        parser.add_argument("--prompt", default="{input}",
                            help="prompt template; {input} is replaced by each block (or @path)")
        parser.add_argument("--name", default="")
        parser.add_argument("--max-tokens", type=int, default=1024)
        parser.add_argument("--max-attempts", type=int, default=3)
        parser.add_argument("--parallelism", type=int, default=16)
        parser.add_argument("--pack-size", type=int, default=1)
        parser.add_argument("--cache", action="store_true", help="mark the stable prefix cacheable")
        parser.add_argument("--stream", action="store_true", help="stream replies (with fallback)")
        parser.add_argument("--max-cost-usd", help="pause the run once it has cost this much")
        parser.add_argument("--follow", action="store_true", help="show progress until it ends")

    def handle(self, *args: Any, **opts: Any) -> None:
        user = get_user_model().objects.filter(username=opts["user"]).first()
        if user is None:
            raise CommandError(f"no user {opts['user']!r}")
        keys = ProviderKey.objects.filter(owner=user)
        ref = opts["key"]
        key = (keys.filter(pk=int(ref)) if ref.isdigit() else keys.filter(label=ref)).first()
        if key is None:
            raise CommandError(f"user {user.username!r} has no key {ref!r}")
        options: dict[str, Any] = {"pack_size": opts["pack_size"], "cache": opts["cache"],
                                   "stream": opts["stream"]}
        if opts["max_cost_usd"]:
            options["max_cost_usd"] = opts["max_cost_usd"]
        source = self._open(opts["file"])
        try:
            run = run_create(
                owner=user, key=key, blocks=parse_jsonl(source), model=opts["model"],
                system_prompt=self._text(opts["system"]), prompt_template=self._text(opts["prompt"]),
                max_tokens=opts["max_tokens"], max_attempts=opts["max_attempts"],
                parallelism=opts["parallelism"], options=options, name=opts["name"],
            )
        except SubmissionError as exc:
            raise CommandError(str(exc)) from None
        finally:
            source.close()
        self.stdout.write(f"submitted run {run.pk} with {run.total_blocks} blocks")
        if opts["follow"]:
            run = follow_run(run.pk, out=sys.stderr)
            self.stdout.write(summary(run))

    def _open(self, name: str) -> io.BufferedReader:
        if name == "-":
            return sys.stdin.buffer  # type: ignore[return-value]
        path = Path(name)
        if not path.is_file():
            raise CommandError(f"no such file: {name}")
        return path.open("rb")

    @staticmethod
    def _text(value: str) -> str:
        if value.startswith("@"):
            path = Path(value[1:])
            if not path.is_file():
                raise CommandError(f"no such file: {value[1:]}")
            return path.read_text(encoding="utf-8")
        return value
