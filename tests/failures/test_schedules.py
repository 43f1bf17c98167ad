"""The project's beat schedules are in django-celery-beat's tables (and so in the admin) right after
migrate, and installing them again never duplicates them or undoes an operator's pause."""

import pytest
from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from apps.failures.schedules import beat_schedules_install
from config.celery_app import app as celery_app

pytestmark = pytest.mark.django_db

CONF = settings.CONVEYOR


def schedule_of(name: str) -> tuple:
    task = PeriodicTask.objects.select_related("interval").get(name=name)
    return task.task, task.interval.every, task.interval.period, task.enabled


def test_the_pump_and_the_replay_are_scheduled_after_migrate():
    assert schedule_of("pump") == ("conveyor.runs.pump", int(CONF["PUMP_INTERVAL_SECONDS"]), "seconds", True)
    assert schedule_of("replay-failures") == (
        "conveyor.failures.replay_due", int(CONF["REPLAY_INTERVAL_SECONDS"]), "seconds", True)


def test_each_schedule_expires_before_its_next_run():
    for name in ("pump", "replay-failures"):
        task = PeriodicTask.objects.get(name=name)
        assert 0 < task.expire_seconds < task.interval.every or task.interval.every == 1


def test_a_worker_finds_the_replay_task_under_its_scheduled_name():
    celery_app.loader.import_default_modules()  # what a worker does on start (autodiscovery)
    assert "conveyor.failures.replay_due" in celery_app.tasks


def test_installing_again_restores_the_interval_but_keeps_an_operators_pause():
    PeriodicTask.objects.filter(name="pump").update(
        enabled=False, interval=IntervalSchedule.objects.create(every=999, period="seconds"))

    beat_schedules_install()

    assert PeriodicTask.objects.filter(name="pump").count() == 1
    assert schedule_of("pump") == ("conveyor.runs.pump", int(CONF["PUMP_INTERVAL_SECONDS"]), "seconds", False)


def test_beats_own_sync_finds_the_installed_rows_and_adds_none():
    tasks, intervals = PeriodicTask.objects.count(), IntervalSchedule.objects.count()

    # What DatabaseScheduler.update_from_dict does for each entry when beat starts.
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        DatabaseScheduler.Entry.from_entry(name, app=celery_app, **entry)

    assert (PeriodicTask.objects.count(), IntervalSchedule.objects.count()) == (tasks, intervals)
