"""Tests run against real PostgreSQL and Redis (never SQLite), on their own database and Redis db.

Hermetic: no `.env` is read, and every knob a test depends on has its own `TEST_` variable, so a
developer's environment (or `.env`) never changes what the suite sees. End-to-end tests pass the
TEST_ variables to the worker processes they start."""

import os

os.environ["DJANGO_READ_DOT_ENV_FILE"] = "false"

from .base import *  # noqa: F403
from .base import CONVEYOR, env
from .database import postgres_options

DEBUG = False
DATABASES = {
    "default": env.db("TEST_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/conveyor"),
}
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["OPTIONS"] = postgres_options(env, prefix="TEST_")
def _redis_url_of_this_test_process(url: str) -> str:
    """The suite runs in two processes (pytest-xdist, `-n 2` in pyproject.toml): each has a test
    database of its own (pytest-django adds `_gw0`, `_gw1`) and, here, a Redis db of its own, the
    configured one for the first and the one below it for the next (15, 14), since tests flush theirs
    and the end-to-end tests' workers consume its queues."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not worker[2:].isdigit() or os.environ.get(_OWN_REDIS_DB):
        return url  # one process, or a process the test process started (it passes its own URL on)
    base, _, db = url.rpartition("/")
    if not db.isdigit():
        return url
    url = f"{base}/{(int(db) - int(worker[2:])) % 16}"
    os.environ["TEST_REDIS_URL"], os.environ[_OWN_REDIS_DB] = url, "1"  # what processes it starts see
    return url


_OWN_REDIS_DB = "CONVEYOR_TEST_OWN_REDIS_DB"
REDIS_URL = _redis_url_of_this_test_process(env.str("TEST_REDIS_URL", default="redis://127.0.0.1:6379/15"))
CELERY_BROKER_URL = REDIS_URL
# Throttle counters in the test Redis db, under their own prefix (tests/conftest.py clears them).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                      "KEY_PREFIX": "conveyor-test"}}
CELERY_TASK_ALWAYS_EAGER = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
KEY_ENCRYPTION_KEYS = [DEV_ENCRYPTION_KEY]  # noqa: F405
PROVIDER_HOST_ALLOWLIST = ["127.0.0.1", "localhost"]
LOGGING["root"]["level"] = env.str("TEST_LOG_LEVEL", default="INFO")  # noqa: F405

# The engine's knobs, fast for tests; each overridable only through its TEST_ name.
TEST_KNOBS = {
    "PUMP_INTERVAL_SECONDS": 5.0,
    "REPLAY_INTERVAL_SECONDS": 60.0,
    "SERVE_SLICE_SECONDS": 60.0,
    "SERVE_REFRESH_SECONDS": 0.2,
    "SERVE_IDLE_EXIT_SECONDS": 5.0,
    "SERVE_HELP_LAG_SECONDS": 0.02,
    "OVERLOAD_BACKOFF_BASE_SECONDS": 0.05,
    "OVERLOAD_BACKOFF_MAX_SECONDS": 0.5,
    "PROVIDER_TIMEOUT_SECONDS": 10.0,
    "LEASE_MARGIN_SECONDS": 2.0,
    "RETRY_BASE_SECONDS": 0.05,
    "RETRY_MAX_SECONDS": 0.5,
    "THROTTLE_DEFAULT_SECONDS": 0.2,
    "FAILURE_REPLAY_BASE_SECONDS": 300.0,
    "BATCH_POLL_SECONDS": 1.0,
    "WEBHOOK_TIMEOUT_SECONDS": 3.0,
    "WEBHOOK_RETRY_BASE_SECONDS": 0.05,
    "WEBHOOK_RETRY_MAX_SECONDS": 0.5,
    "WEBHOOK_SWEEP_SECONDS": 1.0,
    "LANE_FAIR_RESERVE": CONVEYOR["LANE_FAIR_RESERVE"],
}
CONVEYOR = {
    **CONVEYOR,
    **{name: env.float(f"TEST_{name}", default=value) for name, value in TEST_KNOBS.items()},
    "SERVE_PROCESSES_PER_HOST": env.int("TEST_SERVE_PROCESSES_PER_HOST", default=0),
    # Unset: automatic, as in production (TEST_SERVE_MAX_IN_FLIGHT sets the operator's bound).
    "SERVE_MAX_IN_FLIGHT": env.int("TEST_SERVE_MAX_IN_FLIGHT", default=None),
}
# Live progress streams, fast: a test reads a whole stream in well under a second.
RUN_EVENTS = {
    "POLL_SECONDS": env.float("TEST_RUN_EVENTS_POLL_SECONDS", default=0.02),
    "KEEPALIVE_SECONDS": env.float("TEST_RUN_EVENTS_KEEPALIVE_SECONDS", default=15.0),
    "MAX_SECONDS": env.float("TEST_RUN_EVENTS_MAX_SECONDS", default=5.0),
    "RETRY_MILLISECONDS": 500,
}
CELERY_BEAT_SCHEDULE = beat_schedule(CONVEYOR)  # noqa: F405
CELERY_BEAT_SCHEDULER = env.str("TEST_CELERY_BEAT_SCHEDULER",
                                default="django_celery_beat.schedulers:DatabaseScheduler")
