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
CONVEYOR = {
    **CONVEYOR,
    "RETRY_BASE_SECONDS": env.float("RETRY_BASE_SECONDS", default=0.05),
    "RETRY_MAX_SECONDS": env.float("RETRY_MAX_SECONDS", default=0.5),
    "THROTTLE_DEFAULT_SECONDS": env.float("THROTTLE_DEFAULT_SECONDS", default=0.2),
    "PROVIDER_TIMEOUT_SECONDS": env.float("PROVIDER_TIMEOUT_SECONDS", default=10.0),
    "LEASE_MARGIN_SECONDS": env.float("LEASE_MARGIN_SECONDS", default=2.0),
}
PROVIDER_HOST_ALLOWLIST = ["127.0.0.1", "localhost"]
