"""The Celery app (workers, beat, flower). Serves traffic, so it defaults to production settings (DEBUG
off, real secrets required); for development set DJANGO_SETTINGS_MODULE=config.settings.local."""

import os
from typing import Any

from celery import Celery, bootsteps
from celery.signals import celeryd_after_setup, setup_logging, worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**kwargs: Any) -> None:
    """Workers and beat log through Django's LOGGING (its format, LOG_FORMAT=json included, its
    filters and LOG_LEVEL), never through Celery's own handlers: with a receiver connected here,
    Celery configures no logging of its own (and its `-l` option is ignored; LOG_LEVEL decides)."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@worker_init.connect
def refuse_bad_knobs(**kwargs: Any) -> None:
    """A worker with a serving or lane knob that will not do (not a positive number, a zero window)
    refuses to start, naming it, rather than serve without bound or never call. (A bad value in the
    environment stops every process earlier, as the settings are read: config/settings/knobs.py.)"""
    from django.conf import settings

    from config.settings.knobs import knob_problems

    problems = knob_problems(settings.CONVEYOR)
    if problems:
        raise SystemExit("Conveyor's worker will not start: " + "; ".join(problems))


@celeryd_after_setup.connect
def remember_concurrency(sender: str, instance: Any, **kwargs: Any) -> None:
    """The pool's processes are forked after this: they inherit how many there are, which is how a
    host keeps one of them free for control tasks (apps.runs.dispatch.processes_for_serving)."""
    os.environ["CONVEYOR_WORKER_CONCURRENCY"] = str(instance.concurrency)
    consume_this_hosts_queue(instance)


def consume_this_hosts_queue(worker: Any) -> None:
    """A worker that serves (consumes `llm`) also consumes its host's own queue, `llm.<host>`: help
    and hand-overs are sent there when this host has a free serving place (apps/runs/hosts.py)."""
    from apps.runs.hosts import SERVE_QUEUE, host_name, host_queue

    queues = worker.app.amqp.queues
    if SERVE_QUEUE in queues.consume_from:
        queues.select_add(host_queue(host_name()))


class AdvertiseHostPlaces(bootsteps.StartStopStep):
    """While a serving worker runs, its host's serving places are advertised (renewed every few
    seconds, withdrawn at shutdown), so help is sent to a host that can take it."""

    requires = {"celery.worker.components:Pool"}  # type: ignore[assignment]  # (Celery's own examples: a set)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.advertiser: Any = None

    def start(self, worker: Any) -> None:
        from apps.runs.dispatch import processes_for_serving
        from apps.runs.hosts import SERVE_QUEUE, HostAdvertiser, host_name

        if SERVE_QUEUE not in worker.app.amqp.queues.consume_from:
            return
        self.advertiser = HostAdvertiser(host=host_name(), places=processes_for_serving())
        self.advertiser.start()

    def stop(self, worker: Any) -> None:
        if self.advertiser is not None:
            self.advertiser.stop()
            self.advertiser = None


app.steps["worker"].add(AdvertiseHostPlaces)


@worker_process_init.connect
def prepare_for_serving(**kwargs: Any) -> None:
    """Each pool process readies itself to serve as it starts (collector tuned, TLS context built),
    so the first run a fresh worker is given does not wait for it."""
    from apps.runs.serving.process import prepare_process_for_serving

    prepare_process_for_serving()
