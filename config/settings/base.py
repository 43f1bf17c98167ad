"""Settings shared by every environment. Everything comes from the environment via one `env` object.

Defaults make a local run work with zero configuration: SQLite beside the project, Redis on localhost,
and development-only encryption keys (which production refuses, see production.py).
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A `.env` file is read only when asked for: local settings ask (a developer's machine), tests never
# do (they must not change with a developer's `.env`), production only with DJANGO_READ_DOT_ENV_FILE.
if env.bool("DJANGO_READ_DOT_ENV_FILE", default=False):
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-local-development-only")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    # Swagger UI and Redoc served from this app's static files, so /api/docs/ works offline.
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "apps.providers",
    "apps.keys",
    "apps.runs",
    "apps.failures",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------------
# PostgreSQL is the store in every real deployment (claims use FOR UPDATE SKIP LOCKED). The SQLite
# default exists only so that `manage.py demo` runs on a machine with no server installed.
VAR_DIR = BASE_DIR / "var"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'conveyor.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    VAR_DIR.mkdir(exist_ok=True)
    # WAL lets the demo's progress display read while its in-process worker writes.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 30,
    }
# Workers open a connection per unit of work and give it back; CONN_MAX_AGE keeps it across requests.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

# --- Celery ----------------------------------------------------------------------------------------
# Messages are only wake-ups ("look at run X"); PostgreSQL holds the work. So a lost message costs a
# pump tick, and a duplicate costs nothing (claims are atomic).
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None  # tasks report through the database, not through results
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
# Ack after the task ran and requeue if the worker process died: a drain that dies is retried by
# another worker (and in any case its blocks' leases expire and the pump hands them out again).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A drain holds many calls in flight inside one task; prefetching more drains would only park them.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Unacked messages come back after this long. Longer than any drain slice, so a slow drain is not
    # run twice needlessly (twice would be harmless anyway).
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
}
CELERY_TASK_DEFAULT_QUEUE = "control"
CELERY_TASK_ROUTES = {
    "conveyor.runs.drain": {"queue": "llm"},
}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = env.str(
    "CELERY_BEAT_SCHEDULER", default="django_celery_beat.schedulers:DatabaseScheduler"
)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Conveyor ------------------------------------------------------------------------------------
CONVEYOR = {
    # How often the pump looks for due work, expired leases and finished runs.
    "PUMP_INTERVAL_SECONDS": env.float("PUMP_INTERVAL_SECONDS", default=5.0),
    # How often the dead-letter replay runs.
    "REPLAY_INTERVAL_SECONDS": env.float("REPLAY_INTERVAL_SECONDS", default=60.0),
    # Most calls one drain (one worker process) keeps in flight. A run whose parallelism is larger
    # gets more drains from the pump, on other processes, until its parallelism is in use.
    "DRAIN_MAX_IN_FLIGHT": env.int("DRAIN_MAX_IN_FLIGHT", default=256),
    # How long one drain task runs before it hands the run back to the queue.
    "DRAIN_SLICE_SECONDS": env.float("DRAIN_SLICE_SECONDS", default=60.0),
    # Client timeout for one provider call; the lease is this plus a margin.
    "PROVIDER_TIMEOUT_SECONDS": env.float("PROVIDER_TIMEOUT_SECONDS", default=120.0),
    "LEASE_MARGIN_SECONDS": env.float("LEASE_MARGIN_SECONDS", default=30.0),
    # Retry backoff for retryable errors: base * 2**(attempt-1), capped, half of it random.
    "RETRY_BASE_SECONDS": env.float("RETRY_BASE_SECONDS", default=2.0),
    "RETRY_MAX_SECONDS": env.float("RETRY_MAX_SECONDS", default=300.0),
    # Throttling (429/529) waits do not use a block's attempts; this bounds them separately.
    "MAX_THROTTLE_WAITS": env.int("MAX_THROTTLE_WAITS", default=50),
    # Back-off used on 429/529 when the provider gives no Retry-After.
    "THROTTLE_DEFAULT_SECONDS": env.float("THROTTLE_DEFAULT_SECONDS", default=10.0),
    # Dead-letter replay: a failed block goes back to work after base * 2**replays, at most this often.
    "FAILURE_REPLAY_BASE_SECONDS": env.float("FAILURE_REPLAY_BASE_SECONDS", default=300.0),
    "FAILURE_MAX_REPLAYS": env.int("FAILURE_MAX_REPLAYS", default=3),
    "PIPELINE_VERSION": "1",
}

# --- Provider keys -------------------------------------------------------------------------------
# Fernet keys, newest first; several at once allow rotation (manage.py rotate_keys).
# The default is for local development only; production.py refuses to start with it.
DEV_ENCRYPTION_KEY = "Y29udmV5b3ItbG9jYWwtZGV2LW9ubHkta2V5LTMyYiE="
KEY_ENCRYPTION_KEYS = env.list("KEY_ENCRYPTION_KEYS", default=[DEV_ENCRYPTION_KEY])
# Hosts a key's base_url may point to even though they are not public (e.g. the local mock).
PROVIDER_HOST_ALLOWLIST = env.list("PROVIDER_HOST_ALLOWLIST", default=[])

# --- REST API ------------------------------------------------------------------------------------
# Run creation limits: a JSONL upload streams to disk and into the database, so its limit is about
# disk and time; an inline JSON body is parsed whole in memory, so its limit is much smaller.
MAX_UPLOAD_BYTES = env.int("MAX_UPLOAD_BYTES", default=200 * 1024 * 1024)
MAX_UPLOAD_BLOCKS = env.int("MAX_UPLOAD_BLOCKS", default=100_000)
MAX_JSON_BODY_BYTES = env.int("MAX_JSON_BODY_BYTES", default=10 * 1024 * 1024)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": [
        "config.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # One error shape for every 4xx: {"error": {"code", "message", "fields"?, "line"?}}.
    "EXCEPTION_HANDLER": "config.api.errors.exception_handler",
    # Only views that name a scope are throttled, and only their writes (config/api/throttles.py).
    "DEFAULT_THROTTLE_CLASSES": ["config.api.throttles.WriteRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "uploads": env.str("API_THROTTLE_UPLOADS", default="120/minute"),
        "writes": env.str("API_THROTTLE_WRITES", default="600/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Conveyor API",
    "DESCRIPTION": (
        "Push large batches of text through LLMs reliably.\n\n"
        "Authenticate with `Authorization: Token <token>` (or a session). Every error answers with "
        "one shape: `{\"error\": {\"code\", \"message\", \"fields\"?, \"line\"?, "
        "\"retry_after\"?}}`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ loads Swagger UI from our own static files, not from a CDN: it works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "apps.runs.models.RunStatus",
        "BlockStatusEnum": "apps.runs.models.BlockStatus",
        "AttemptOutcomeEnum": "apps.runs.models.AttemptOutcome",
    },
}

# The project's schedules. django-celery-beat's DatabaseScheduler installs these into the database
# on start, where the admin can edit them. Each expires before its next run, so a backlog of pumps
# never piles up behind a stalled worker.
def beat_schedule(conveyor: dict) -> dict:
    def every(task: str, seconds: float) -> dict:
        return {
            "task": task,
            "schedule": seconds,
            "options": {
                "expires": seconds * 0.9,
                # django-celery-beat's DatabaseScheduler keeps only this spelling of the expiry.
                "expire_seconds": max(1, int(seconds * 0.9)),
            },
        }

    return {
        "pump": every("conveyor.runs.pump", conveyor["PUMP_INTERVAL_SECONDS"]),
        "replay-failures": every("conveyor.failures.replay_due", conveyor["REPLAY_INTERVAL_SECONDS"]),
    }


CELERY_BEAT_SCHEDULE = beat_schedule(CONVEYOR)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # httpx2/httpcore log every request line at INFO; keep them quiet.
        "httpx2": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "aiohttp.access": {"level": "WARNING"},
    },
}
