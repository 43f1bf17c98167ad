"""`manage.py worker_alive [--node NAME] [--timeout S]`: liveness of the Celery worker on this host.

Sends one `ping` control message to this host's worker (default node name `celery@<host name>`, the
name `celery worker` takes unless `-n` says otherwise) and exits 0 if it answers within the timeout,
1 if it does not or the broker does not answer. The answer comes from the worker's main process, the
one that consumes from the queues: a worker whose consumer is stuck or gone fails, whatever its pool
processes are doing. For compose healthchecks and Kubernetes liveness probes (exec).
"""

from typing import Any

from celery import current_app as app
from celery.utils.nodenames import default_nodename, host_format
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from kombu.exceptions import KombuError, OperationalError


class Command(BaseCommand):
    help = "Exit 0 if this host's Celery worker answers a ping within the timeout, else 1."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--node", default="",
                            help="the worker's node name (%%h: this host name); default celery@<host name>")
        parser.add_argument("--timeout", type=float, default=3.0,
                            help="seconds to wait for the broker and for the answer (default 3)")

    def handle(self, *args: Any, **options: Any) -> None:
        # None: this host's name (Celery takes it; celery-types says str).
        node = host_format(options["node"]) if options["node"] else default_nodename(None)  # type: ignore[arg-type]
        timeout = options["timeout"]
        try:
            with app.connection_for_write(settings.CELERY_BROKER_URL) as connection:
                connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
                replies = app.control.inspect(destination=[node], timeout=timeout,
                                              connection=connection).ping()
        except (OSError, KombuError, OperationalError) as exc:
            raise CommandError(f"{node}: the broker does not answer ({type(exc).__name__})") from None
        if not replies or node not in replies:
            raise CommandError(f"{node}: no answer to ping within {timeout:g} s")
        self.stdout.write(f"{node}: alive")
