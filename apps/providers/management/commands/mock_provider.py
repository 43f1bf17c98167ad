"""`python manage.py mock_provider --port N`: serve the mock Anthropic API in the foreground.

Prints `Mock Anthropic API listening on http://HOST:PORT` once it accepts connections (with `--port 0`
that line is the only way to learn the port) and stops cleanly on SIGINT or SIGTERM. Options: see
`--help` or docs/mock-provider.md; `python -m mock_provider` takes the same ones.
"""

import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mock_provider.cli import add_arguments, config_from_options, serve_until_signalled
from mock_provider.server import MockServer


class Command(BaseCommand):
    help = "Serve a mock of the Anthropic Messages API (see docs/mock-provider.md)."
    requires_system_checks: list[str] = []  # it touches no database or model

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config = config_from_options(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        asyncio.run(serve_until_signalled(MockServer(config), options["host"], options["port"], self._say))

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
