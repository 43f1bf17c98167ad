"""The log context: what a record says about the work it is about, and what it never says."""

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.core.logcontext import PlainFormatter, correlation_id, log_context

logger = logging.getLogger("apps.tests.logs")
ROOT = Path(__file__).resolve().parents[2]
SECRET = "conveyor-secret-3f9a77c1"  # no sk-ant- shape: only the context can redact it


def test_a_record_inside_a_context_carries_its_fields(console):
    with log_context(run_id="run-1", key_id=7), log_context(block_uid="b3", attempt=2):
        logger.warning("hello")
    record = console.records()[-1]
    assert (record["message"], record["level"], record["logger"]) == ("hello", "WARNING", "apps.tests.logs")
    fields = (record["run_id"], record["key_id"], record["block_uid"], record["attempt"])
    assert fields == ("run-1", 7, "b3", 2)


def test_a_record_after_the_context_carries_none_of_it(console):
    with log_context(run_id="run-1"):
        pass
    logger.warning("after")
    assert "run_id" not in console.records()[-1]


def test_a_field_given_by_the_caller_wins_over_the_context(console):
    with log_context(event_code="PIPELINE_RETRY"):
        logger.warning("x", extra={"event_code": "DB_WRITE_FAILED"})
    assert console.records()[-1]["event_code"] == "DB_WRITE_FAILED"


def test_an_unknown_field_is_refused():
    with pytest.raises(TypeError, match="colour"), log_context(colour="red"):
        pass


def test_concurrent_tasks_each_log_with_their_own_context(console):
    async def call(uid: str, delay: float) -> None:
        with log_context(block_uid=uid, correlation_id=correlation_id(run_id="r", block_uid=uid, attempt=1)):
            await asyncio.sleep(delay)
            logger.warning("answered %s", uid)

    async def main() -> None:
        with log_context(run_id="r"):
            await asyncio.gather(*(asyncio.create_task(call(f"b{i}", 0.01 * (5 - i))) for i in range(5)))

    asyncio.run(main())
    answered = [r for r in console.records() if r["message"].startswith("answered")]
    assert len(answered) == 5
    for record in answered:
        uid = record["message"].split()[-1]
        assert (record["run_id"], record["block_uid"], record["correlation_id"]) == ("r", uid, f"r:{uid}:1")


def test_a_secret_of_the_context_is_redacted_from_message_extras_and_traceback(console):
    with log_context(key_id=1, secrets=(SECRET,)):
        try:
            raise RuntimeError(f"the provider said: bad key {SECRET}")
        except RuntimeError:
            logger.exception("call failed with %s", SECRET, extra={"detail": {"echo": SECRET}})
    assert SECRET not in console.text
    record = console.records()[-1]
    assert record["message"] == "call failed with [REDACTED]"
    assert record["detail"] == {"echo": "[REDACTED]"}
    assert "bad key [REDACTED]" in record["exc_info"]


def test_an_anthropic_shaped_key_is_redacted_without_being_named(console):
    fake_key = "sk-ant-" + "test-not-a-key-" + "x" * 12  # the shape the redaction pattern knows
    logger.warning("echoed %s back", fake_key)
    assert console.records()[-1]["message"] == "echoed [REDACTED] back"


def test_the_plain_line_shows_the_fields_after_the_message():
    record = logging.makeLogRecord({"msg": "m", "levelname": "INFO", "name": "n", "run_id": "r",
                                    "event_code": "AUTH_FAILED"})
    line = PlainFormatter("%(levelname)s %(name)s %(message)s").format(record)
    assert line == "INFO n m run_id=r event_code=AUTH_FAILED"


def _log_in_a_new_process(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "import django, logging; django.setup()\n"
        "from apps.core.logcontext import log_context\n"
        "with log_context(run_id='r1', correlation_id='r1:b0:1'):\n"
        "    logging.getLogger('apps.runs').warning('hello')\n"
    )
    base = {k: v for k, v in os.environ.items() if k != "LOG_FORMAT"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**base, "DJANGO_SETTINGS_MODULE": "config.settings.test", **env})


def test_log_format_json_makes_every_line_a_json_object_with_the_context():
    done = _log_in_a_new_process({"LOG_FORMAT": "json"})
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines[-1]["message"] == "hello"
    assert (lines[-1]["run_id"], lines[-1]["correlation_id"]) == ("r1", "r1:b0:1")
    assert {"time", "level", "logger", "pid"} <= set(lines[-1])


def test_the_default_format_is_plain_text_with_the_context():
    done = _log_in_a_new_process({})
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(
        "WARNING apps.runs hello run_id=r1 correlation_id=r1:b0:1")


def test_an_unknown_log_format_is_refused_at_start():
    done = _log_in_a_new_process({"LOG_FORMAT": "xml"})
    assert done.returncode != 0
    assert "LOG_FORMAT must be plain or json" in done.stderr
