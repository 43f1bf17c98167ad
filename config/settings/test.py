"""Tests run against real PostgreSQL and Redis (never SQLite), on their own database and Redis db."""

from .base import *  # noqa: F403
from .base import CONVEYOR, env

DATABASES = {
    "default": env.db("TEST_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/conveyor"),
}
DATABASES["default"]["CONN_MAX_AGE"] = 0
REDIS_URL = env.str("TEST_REDIS_URL", default="redis://127.0.0.1:6379/15")
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ALWAYS_EAGER = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CONVEYOR = {**CONVEYOR, "RETRY_BASE_SECONDS": 0.05, "RETRY_MAX_SECONDS": 0.5}
PROVIDER_HOST_ALLOWLIST = ["127.0.0.1", "localhost"]
