"""The pump ticks every few seconds: what it writes to the log is what it did, nothing else."""

import logging

import pytest
from django.utils import timezone

from apps.runs.models import Block
from apps.runs.services import blocks_claim
from apps.runs.tasks import pump
from tests.factories import make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def info_level():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    yield
    root.setLevel(level)


def test_a_pump_with_nothing_to_do_writes_no_line(console, info_level):
    pump.apply()  # through Celery's tracer, which announces a task's success at INFO
    assert console.text == ""


def test_a_pump_that_recovers_a_lease_says_so_and_nothing_about_its_routine(owner, offline_key, console,
                                                                            info_level):
    run = make_run(owner, offline_key, ["a"])
    blocks_claim(run_id=run.pk, limit=1, worker="gone")
    Block.objects.filter(run=run).update(lease_expires_at=timezone.now())
    pump.apply()
    messages = [r["message"] for r in console.records()]
    assert any("1 expired lease(s)" in m for m in messages), messages
    assert not any("conveyor.runs.pump" in m for m in messages)  # no "Task ... succeeded"


def test_routine_announcements_come_back_when_asked_for(console, info_level, settings):
    from apps.core.logcontext import RoutineTaskFilter

    record = logging.makeLogRecord({"name": "celery.beat", "levelno": logging.INFO, "levelname": "INFO",
                                    "msg": "Scheduler: Sending due task %s (%s)",
                                    "args": ("pump", "conveyor.runs.pump")})
    assert RoutineTaskFilter().filter(record) is False
    record.args = ("validate", "conveyor.keys.validate_key")
    assert RoutineTaskFilter().filter(record) is True
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["routine_tasks", "context"]
