"""Starting the mock from tests, the demo and benchmarks.

In-process (a daemon thread, 127.0.0.1, a free port)::

    with running_mock(latency_ms=5, rpm=100) as mock:
        client = anthropic.Anthropic(api_key="sk-test", base_url=mock.base_url, max_retries=0)
        client.messages.create(...)
        mock.stats()["by_status"]       # {"200": 1}
        mock.configure(fault_rates={"529": 0.1})
        mock.advance(301)               # move the mock's clock: cache TTLs, rate-limit refills
        mock.reset()

As a subprocess (for Celery workers in other processes; `python -m mock_provider`, or
`manage.py mock_provider` with manage_py=True)::

    with running_mock_process(api_keys=["sk-a"], latency_ms=20) as mock:
        ...                             # same handle; mock.process is the Popen

Both take MockConfig's fields as keyword arguments (see mock_provider/config.py) and yield a
MockHandle, which talks to the server only over HTTP (`/_mock/...`), so it works the same either way.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic

from mock_provider.config import MockConfig
from mock_provider.server import MockServer
from mock_provider.state import MockClock

PROJECT_ROOT = Path(__file__).resolve().parents[1]
READY_LINE = re.compile(r"listening on (http://\S+)")
TEST_API_KEY = "sk-ant-mock-test"


class MockHandle:
    """A running mock, in this process or another; every method is one HTTP call to it."""

    def __init__(self, base_url: str, *, process: subprocess.Popen[str] | None = None) -> None:
        self.base_url = base_url
        self.process = process

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self, limit: int | None = None) -> dict[str, Any]:
        """Counters (`requests`, `by_status`, `by_path`, `by_model`, `by_api_key`, `by_outcome`,
        `by_fault`, `tokens`), `cache_entries`, `clock_offset`, `config`, and `log`: recent requests
        (oldest first) with `t` (arrival on the mock's clock), `status`, `outcome`, `fault`,
        `retry_count`, `usage`, `request_id`..."""
        return self._call("GET", "/_mock/stats" + (f"?limit={limit}" if limit is not None else ""))

    def requests(self, path: str = "/v1/messages") -> list[dict[str, Any]]:
        """The logged requests to one path, oldest first."""
        return [r for r in self.stats()["log"] if r["path"] == path]

    def reset(self) -> None:
        """Clear counters, log, cache, directive counts and rate-limit buckets; rewind the clock."""
        self._call("POST", "/_mock/reset")

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change MockConfig fields at runtime (`latency_ms=`, `rpm=`, `fault_rates=`...)."""
        if "api_keys" in changes:
            changes["api_keys"] = sorted(changes["api_keys"])
        return self._call("POST", "/_mock/config", changes)

    def advance(self, seconds: float) -> None:
        """Move the mock's clock forward: cache entries expire, rate-limit buckets refill."""
        self._call("POST", "/_mock/clock", {"advance": seconds})

    def client(self, api_key: str = TEST_API_KEY, **options: Any) -> anthropic.Anthropic:
        """An SDK client for this mock; no retries unless asked for (`max_retries=`)."""
        options.setdefault("max_retries", 0)
        return anthropic.Anthropic(api_key=api_key, base_url=self.base_url, **options)

    def async_client(self, api_key: str = TEST_API_KEY, **options: Any) -> anthropic.AsyncAnthropic:
        options.setdefault("max_retries", 0)
        return anthropic.AsyncAnthropic(api_key=api_key, base_url=self.base_url, **options)


@contextmanager
def running_mock(*, clock: MockClock | None = None, **config: Any) -> Iterator[MockHandle]:
    """A mock on a daemon thread, listening on 127.0.0.1 on a free port, stopped on exit."""
    server = MockServer(MockConfig().updated(config), clock=clock)
    base_url = server.start()
    try:
        yield MockHandle(base_url)
    finally:
        server.stop()


def command_arguments(**config: Any) -> list[str]:
    """MockConfig fields as command-line flags (validated by building the config first)."""
    MockConfig().updated(config)
    argv: list[str] = []
    for name, value in config.items():
        if value is None:
            continue
        if name == "api_keys":
            for key in [value] if isinstance(value, str) else value:
                argv += ["--api-key", key]
        elif name == "fault_rates":
            argv += ["--fault-rates", ",".join(f"{k}={v}" for k, v in dict(value).items())]
        else:
            argv += ["--" + name.replace("_", "-"), str(value)]
    return argv


@contextmanager
def running_mock_process(*, host: str = "127.0.0.1", port: int = 0, manage_py: bool = False,
                         startup_timeout: float = 60.0, **config: Any) -> Iterator[MockHandle]:
    """The mock in a subprocess; yields once it prints its URL, stops it (SIGTERM) on exit.

    Runs `python -m mock_provider`, which starts in about a second; `manage_py=True` runs
    `manage.py mock_provider` instead (same flags), which first pays for Django's startup.
    """
    entry = [str(PROJECT_ROOT / "manage.py"), "mock_provider"] if manage_py else ["-m", "mock_provider"]
    argv = [sys.executable, *entry, "--host", host, "--port", str(port), *command_arguments(**config)]
    process = subprocess.Popen(argv, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        base_url = _wait_for_url(process, startup_timeout)
        # Keep reading its output so a chatty server can never block on a full pipe.
        threading.Thread(target=lambda: process.stdout and process.stdout.read(), daemon=True).start()
        yield MockHandle(base_url, process=process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_url(process: subprocess.Popen[str], timeout: float) -> str:
    lines: list[str] = []
    found: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if match := READY_LINE.search(line):
                found.append(match.group(1))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found:
        process.kill()
        raise RuntimeError("mock_provider did not start:\n" + "".join(lines))
    return found[0]
