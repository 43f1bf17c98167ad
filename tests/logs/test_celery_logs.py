"""A real worker and beat with LOG_FORMAT=json: their lines (Celery's own included) are JSON objects
with the run's context, the pump's routine says nothing, and no line has the key's secret."""

import json
import re
import time

import pytest
from django.utils import timezone

from apps.health.heartbeats import PUMP, heartbeat_last
from apps.runs.tasks import serve
from tests.e2e.conftest import run_status, wait_for
from tests.factories import SECRET, make_run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Records in the plain format, or in Celery's own ("[time: INFO/MainProcess] ..."): none may appear.
NOT_JSON_RECORD = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ |\[\d{4}-\d\d-\d\d .*: )"
                             r"(DEBUG|INFO|WARNING|ERROR|CRITICAL)")


def test_worker_and_beat_log_json_with_the_runs_context_and_a_quiet_pump(owner, e2e_key, stack):
    stack.env["LOG_FORMAT"] = "json"
    stack.worker("w1")
    stack.beat()
    run = make_run(owner, e2e_key, ["ok", "flaky [[mock:status=500 times=1]]"])
    serve.delay()
    wait_for(lambda: run_status(run) == "complete", timeout=180, what="run to complete", stack=stack)
    idle_since = timezone.now()
    time.sleep(3)  # a few more pump ticks (every 0.5 s here) with nothing to do
    stack.stop()
    assert heartbeat_last(PUMP) > idle_since  # the pump did run meanwhile

    text = {name: (stack.logdir / f"{name}.log").read_text() for name in ("w1", "beat")}
    for name, output in text.items():
        assert not [line for line in output.splitlines() if NOT_JSON_RECORD.match(line)], name
    records = [json.loads(line) for output in text.values() for line in output.splitlines()
               if line.startswith("{")]
    assert any(r["logger"] == "celery.beat" for r in records)
    retry = next(r for r in records if r.get("event_code") == "PIPELINE_RETRY")
    assert (retry["run_id"], retry["block_uid"], retry["attempt"], retry["key_id"]) == (
        str(run.pk), "b1", 1, e2e_key.pk)
    assert retry["correlation_id"] == f"{run.pk}:b1:1"
    assert any(r["message"].startswith(f"run {run.pk} ended: complete") and r["run_id"] == str(run.pk)
               for r in records)
    # The pump ran dozens of times and did nothing worth a line: not one about it.
    assert not [r for r in records if "conveyor.runs.pump" in r["message"]]
    assert SECRET not in "".join(text.values())
