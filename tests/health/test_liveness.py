"""The liveness commands for compose and Kubernetes: exit 0 when alive, 1 (with the reason) when not.
A live worker answering `worker_alive` is tested end to end in tests/e2e/test_liveness.py."""

import time
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from apps.health.heartbeats import PUMP, heartbeat_record


@pytest.mark.django_db
def test_beat_alive_succeeds_when_the_pump_ran_recently():
    heartbeat_record(PUMP)
    out = StringIO()
    call_command("beat_alive", stdout=out)
    assert "the pump ran" in out.getvalue()


@pytest.mark.django_db
def test_beat_alive_fails_when_the_pump_never_ran():
    with pytest.raises(CommandError, match="never run"):
        call_command("beat_alive")


@pytest.mark.django_db
def test_beat_alive_fails_when_the_pump_is_older_than_the_given_age():
    heartbeat_record(PUMP)
    with time_machine.travel(timezone.now() + timedelta(seconds=31)), \
            pytest.raises(CommandError, match="more than 30 s"):
        call_command("beat_alive", "--max-age", "30")


def test_worker_alive_fails_when_no_worker_of_that_name_answers():
    with pytest.raises(CommandError, match="no answer to ping"):
        call_command("worker_alive", "--node", "nobody@nowhere", "--timeout", "0.5")


def test_worker_alive_fails_quickly_when_the_broker_does_not_answer(closed_port):
    started = time.monotonic()
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_port}/0"), \
            pytest.raises(CommandError, match="the broker does not answer"):
        call_command("worker_alive", "--timeout", "1")
    assert time.monotonic() - started < 5
