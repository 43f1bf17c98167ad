"""End-to-end: real Celery worker processes and celery beat, the mock provider in its own process,
PostgreSQL and Redis, all talking to each other as in production."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from apps.runs.models import Run
from mock_provider.testing import MockHandle, running_mock_process
from tests.factories import SECRET, make_key

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


class Stack:
    """Worker and beat processes started for one test; stopped (hard) at the end."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.processes: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *argv], cwd=ROOT, env=self.env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.processes[name] = process
        return process

    def worker(self, name: str, concurrency: int = 2) -> subprocess.Popen:
        return self._start(name, [
            "worker", "-Q", "llm,control", "-c", str(concurrency), "-P", "prefork", "-n",
            f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info",
        ])

    def beat(self) -> subprocess.Popen:
        return self._start("beat", ["beat", "-s", str(self.logdir / "beat-schedule"), "-l", "info"])

    def kill(self, name: str) -> None:
        """SIGKILL the whole process group: the worker and its pool children, no goodbye."""
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ---\n" + p.read_text()[-4000:] for p in sorted(self.logdir.glob("*.log"))
        )


@pytest.fixture
def broker() -> redis.Redis:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    return client


@pytest.fixture
def mock_process() -> Iterator[MockHandle]:
    with running_mock_process(api_keys=[SECRET], latency_ms=20) as handle:
        yield handle


@pytest.fixture
def stack(transactional_db, broker, request) -> Iterator[Stack]:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "TEST_REDIS_URL": settings.CELERY_BROKER_URL,
        "TEST_PUMP_INTERVAL_SECONDS": "0.5",
        "TEST_SERVE_SLICE_SECONDS": "4",
        "TEST_PROVIDER_TIMEOUT_SECONDS": "3",
        "TEST_LEASE_MARGIN_SECONDS": "1",
        "TEST_CELERY_BEAT_SCHEDULER": "celery.beat:PersistentScheduler",
        "PYTHONUNBUFFERED": "1",
    }
    with tempfile.TemporaryDirectory(prefix="conveyor-e2e-") as tmp:
        stack = Stack(env, Path(tmp))
        try:
            yield stack
        finally:
            stack.stop()
            if os.environ.get("E2E_KEEP_LOGS"):  # a folder to keep the processes' logs in
                shutil.copytree(tmp, os.environ["E2E_KEEP_LOGS"], dirs_exist_ok=True)
            if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
                print(stack.logs())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def e2e_key(owner, mock_process: MockHandle):
    return make_key(owner, base_url=mock_process.base_url)


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str, stack: Stack | None = None
             ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    details = stack.logs() if stack else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{details}")


def run_status(run: Run) -> str:
    run.refresh_from_db()
    return run.status
