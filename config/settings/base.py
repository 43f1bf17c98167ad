"""Settings shared by every environment. Everything comes from the environment via one `env` object.

Defaults make a local run work with zero configuration: SQLite beside the project, Redis on localhost,
and development-only encryption keys (which production refuses, see production.py).
"""

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from config.settings.database import postgres_options
from config.settings.knobs import knob
from config.version import pipeline_version

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()


# A file of variables is read only when asked for, and never overrides the environment: local settings
# read `.env.local` (a developer's machine), production reads `.env` only with DJANGO_READ_DOT_ENV_FILE
# (compose hands `.env` to its containers itself), tests read none (they must not change with a
# developer's files). Two files, because compose's `.env` holds production values (ALLOWED_HOSTS of
# the real site, the real KEY_ENCRYPTION_KEYS or none yet) that must never reach `manage.py runserver`.
DOT_ENV_FILE = os.environ.get("DJANGO_DOT_ENV_FILE", ".env")
if env.bool("DJANGO_READ_DOT_ENV_FILE", default=False):
    environ.Env.read_env(BASE_DIR / DOT_ENV_FILE, overwrite=False)

# Read verbatim: django-environ takes a value starting with "$" for a reference to another variable,
# and a generated key may start with "$" (it then silently became the development default).
SECRET_KEY = os.environ.get("SECRET_KEY") or "django-insecure-local-development-only"
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
# Where people and webhook receivers reach this service (https://conveyor.example.com): the links in a
# `run.finished` event are absolute under it; empty, they are paths (/api/v1/runs/...).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").rstrip("/")

INSTALLED_APPS = [
    # Django's admin with the console's site (apps/console/site.py: the overview among its pages).
    "apps.console.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "csp",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "apps.accounts",
    "apps.audit",
    "apps.providers",
    "apps.teams",
    "apps.keys",
    "apps.lanes",
    "apps.runs",
    "apps.pipelines",
    "apps.failures",
    "apps.health",
    "apps.webhooks",
    "apps.metrics",
    "apps.console",
]

MIDDLEWARE = [
    # First: container and load-balancer probes reach /healthz and /readyz whatever Host header and
    # scheme they use (no ALLOWED_HOSTS check, no https redirect, no session or CSRF work).
    "apps.health.middleware.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
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
    # The covering indexes' INCLUDE columns (PostgreSQL's index-only scans) mean nothing to SQLite,
    # which builds the index without them: not worth a warning on every demo command.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
# Workers open a connection per unit of work and give it back; CONN_MAX_AGE keeps it across requests.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # A server that does not answer fails a connection within DATABASE_CONNECT_TIMEOUT seconds instead
    # of the operating system's minutes (libpq waits forever by default): readiness answers 503
    # quickly. A peer cut off from the network is dropped within DATABASE_DEAD_PEER_SECONDS (TCP
    # keepalives), and a session idle in an open transaction ends after
    # DATABASE_IDLE_IN_TRANSACTION_SECONDS, so its locks are let go (config/settings/database.py).
    DATABASES["default"]["OPTIONS"] = {**postgres_options(env), **DATABASES["default"].get("OPTIONS", {})}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Authentication -------------------------------------------------------------------------------
# django-axes first: it refuses a locked-out client before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Reverse proxies in front of the app that append to X-Forwarded-For (0: clients connect directly).
# The login lockout, the failed-token counter and the API throttles count per client address, so
# behind a proxy this must be right, or every client shares the proxy's address.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# Login protection (admin login, and the API login endpoint's basic auth): after AXES_FAILURE_LIMIT
# failed logins from one client address, that address is locked out for AXES_COOLOFF_TIME (429).
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.security.client_ip"
# Failed API tokens: after this many from one client address within the window, that address gets
# 429 for the rest of it, whatever token it sends (config/api/authentication.py).
API_TOKEN_FAILURE_LIMIT = env.int("API_TOKEN_FAILURE_LIMIT", default=20)
API_TOKEN_FAILURE_WINDOW_SECONDS = env.int("API_TOKEN_FAILURE_WINDOW_SECONDS", default=600)
# Prometheus scrapes GET /metrics with `Authorization: Bearer <METRICS_TOKEN>`. Unset: /metrics answers
# 404 (never public by omission). Use a long random value, e.g.
# `python -c "import secrets; print(secrets.token_urlsafe(32))"`.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# API tokens (django-rest-knox): stored hashed, expiring. `Authorization: Token <token>`.
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=env.int("API_TOKEN_TTL_DAYS", default=7)),
    "TOKEN_LIMIT_PER_USER": env.int("API_TOKEN_LIMIT_PER_USER", default=20),
    "AUTO_REFRESH": False,
    "AUTH_HEADER_PREFIX": "Token",
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# Where collectstatic puts them (production serves them from here through whitenoise).
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "var" / "static")))

# --- Shared counters (throttles) ---------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# In Redis, so every web process counts against the same limits (a per-process local memory cache
# would give each process its own). Nothing correct depends on it: a flushed cache only resets counts.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env.str("CACHE_URL", default=REDIS_URL),
        "KEY_PREFIX": "conveyor",
    }
}

# --- Content-Security-Policy (django-csp) ------------------------------------------------------------
# Everything the app serves comes from itself: the admin, and the API docs (Swagger UI from
# drf-spectacular-sidecar, its start-up script as a separate file). Inline style attributes are used
# by a few admin columns; inline scripts are not allowed anywhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# --- Celery ----------------------------------------------------------------------------------------
# Messages are only wake-ups ("look at run X"); PostgreSQL holds the work. So a lost message costs a
# pump tick, and a duplicate costs nothing (claims are atomic).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None  # tasks report through the database, not through results
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
# Ack after the task ran and requeue if the worker process died: a serving loop that dies is started
# again by another worker (and in any case its blocks' leases expire and the pump hands them out again).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A serving loop holds many calls in flight inside one task; prefetching more would only park them.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Unacked messages come back after this long. Longer than any serving slice, so a slow one is not
    # run twice needlessly (twice would be harmless anyway).
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    # A broker that does not answer fails a send within seconds (the wake-up is sent again by the
    # pump), rather than when the operating system gives up on the connection.
    "socket_connect_timeout": 5,
    "socket_timeout": 10,
    "socket_keepalive": True,
}
CELERY_TASK_DEFAULT_QUEUE = "control"
CELERY_TASK_ROUTES = {
    "conveyor.runs.serve": {"queue": "llm"},
}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = env.str(
    "CELERY_BEAT_SCHEDULER", default="django_celery_beat.schedulers:DatabaseScheduler"
)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Conveyor ------------------------------------------------------------------------------------
CONVEYOR = {
    # The most steps a pipeline may have (apps/pipelines/): a longer spec is refused at create.
    "PIPELINE_MAX_STEPS": env.int("PIPELINE_MAX_STEPS", default=10),
    # The most child items one item may fan out into (a step's `fan_out` array): a schema that allows
    # more (maxItems) is refused at create; an answer with more stops its item.
    "PIPELINE_MAX_CHILDREN": env.int("PIPELINE_MAX_CHILDREN", default=100),
    # How often beat settles running pipelines (a safety net: the handoff settles after each write).
    "PIPELINE_SETTLE_SECONDS": env.float("PIPELINE_SETTLE_SECONDS", default=30.0),
    # How often the pump looks for due work, expired leases and finished runs.
    "PUMP_INTERVAL_SECONDS": env.float("PUMP_INTERVAL_SECONDS", default=5.0),
    # How often the dead-letter replay runs.
    "REPLAY_INTERVAL_SECONDS": env.float("REPLAY_INTERVAL_SECONDS", default=60.0),
    # Retention (apps/runs/services/retention.py): the days a run's text (inputs, outputs, attempt
    # replies, dead-letter snapshots, diagnostic payloads) is kept after it ended, for runs that set no
    # `retention_days` of their own; unset: kept. How often beat purges expired runs (and queues again a
    # deletion that stalled).
    "RUN_RETENTION_DAYS": env.int("RUN_RETENTION_DAYS", default=None),
    "RETENTION_SWEEP_SECONDS": env.float("RETENTION_SWEEP_SECONDS", default=300.0),
    # The serving loop (one per worker process, serving every active run; apps/runs/serving/):
    # A safety bound an operator sets on purpose: the most blocks in provider calls at once in one
    # process. Unset (the default): automatic, as many as the lanes its runs use can take (their
    # useful concurrency: rate limit x latency), bounded by the process's open-files limit
    # (apps/runs/serving/capacity.py).
    "SERVE_MAX_IN_FLIGHT": knob("SERVE_MAX_IN_FLIGHT", None),
    # How long one serve task runs before it hands over to the next (a warm shutdown waits for it).
    "SERVE_SLICE_SECONDS": knob("SERVE_SLICE_SECONDS", 60.0),
    # How often a loop looks for new work (so a new run's first call waits at most about this).
    "SERVE_REFRESH_SECONDS": knob("SERVE_REFRESH_SECONDS", 0.5),
    # A loop with nothing to do for this long ends, freeing its process.
    "SERVE_IDLE_EXIT_SECONDS": knob("SERVE_IDLE_EXIT_SECONDS", 10.0),
    # Results are written behind the calls in batches: at the latest this long after the first of a
    # batch came back (or at once when no call is left in flight), so each write's fixed cost (locks,
    # counts, the end-of-run check) is shared by many blocks. Claims never wait for it.
    "SERVE_WRITE_BATCH_SECONDS": knob("SERVE_WRITE_BATCH_SECONDS", 0.25),
    # Blocks a loop holds claimed beyond a run's share, as a fraction of it, so a slot refills at once.
    "SERVE_CLAIM_AHEAD": knob("SERVE_CLAIM_AHEAD", 0.5),
    # A loop whose event loop runs later than this (smoothed) is short of CPU and asks for another
    # loop to share its work, up to SERVE_PROCESSES_PER_HOST per host.
    "SERVE_HELP_LAG_SECONDS": knob("SERVE_HELP_LAG_SECONDS", 0.02),
    # Processes of one worker host that may serve at once; 0: its concurrency minus one (at least one),
    # which keeps a process free for the control tasks.
    "SERVE_PROCESSES_PER_HOST": knob("SERVE_PROCESSES_PER_HOST", 0),
    # Lanes (apps/lanes/): pace at this share of each known limit, so clocks and rounding never tip
    # a lane over; start an unknown lane with this many calls at once and grow from there (AIMD).
    "LANE_RATE_SAFETY": knob("LANE_RATE_SAFETY", 0.98),
    "LANE_INITIAL_WINDOW": knob("LANE_INITIAL_WINDOW", 4),
    # Once a response has told the lane its limits, the buckets pace it: the window opens to this
    # (a host's default in-flight ceiling, so a run reaches its parallelism in the next round trip
    # rather than after a slow start) and only overload cuts it. Once the latency is known too, the
    # window is at least the lane's useful concurrency (Little's law): the calls per second its limits
    # allow x its latency x LANE_CONCURRENCY_HEADROOM (a tier-4 key at 15 s: ~1,200 calls).
    "LANE_WINDOW_AFTER_HEADERS": knob("LANE_WINDOW_AFTER_HEADERS", 256),
    "LANE_CONCURRENCY_HEADROOM": knob("LANE_CONCURRENCY_HEADROOM", 1.25),
    # Each bucket holds this many seconds of its limit, not a minute: the API enforces per-minute
    # limits with a token bucket over shorter intervals, so a fresh lane firing a minute's worth at
    # once gets 429s. A call bigger than the bucket still goes, with a full one.
    "LANE_BURST_SECONDS": knob("LANE_BURST_SECONDS", 0.5),
    # What a lane learned (limits, latency, window) is written to PostgreSQL at most this often per
    # lane and process, and seeds a lane Redis lost (apps/lanes/memory.py).
    "LANE_REMEMBER_SECONDS": knob("LANE_REMEMBER_SECONDS", 30.0),
    "LANE_MIN_WINDOW": knob("LANE_MIN_WINDOW", 1),
    # Overload (529, 5xx) cuts a lane's window only when it is dense: above this share of recent calls.
    "LANE_OVERLOAD_CUT": knob("LANE_OVERLOAD_CUT", 0.25),
    # A lane overloaded even one call at a time stops for up to this long (doubling each time).
    "LANE_OVERLOAD_PAUSE_MAX_SECONDS": knob("LANE_OVERLOAD_PAUSE_MAX_SECONDS", 30.0),
    # Fair share of a lane across processes and hosts (apps/runs/serving/lanewide.py): an owner holding
    # less than this share of a lane is never refused for fair share, so a view a moment old never
    # stops anyone from starting something.
    "LANE_FAIR_RESERVE": knob("LANE_FAIR_RESERVE", 0.05),
    # Batch mode (apps/runs/batching/): how often beat looks at open batches and submits new ones;
    # the most requests and bytes in one batch (the API allows 100,000 and 256 MB); how long a batch's
    # blocks stay leased; a batch row left "submitting" by a crash is looked for at the provider after
    # this long; mode=auto picks batch when the deadline is at least this far, and an auto run whose
    # batch is still open this close to its deadline is switched to live calls.
    "BATCH_POLL_SECONDS": env.float("BATCH_POLL_SECONDS", default=30.0),
    "BATCH_MAX_REQUESTS": env.int("BATCH_MAX_REQUESTS", default=10_000),
    "BATCH_MAX_BYTES": env.int("BATCH_MAX_BYTES", default=100 * 1024 * 1024),
    "BATCH_LEASE_HOURS": env.float("BATCH_LEASE_HOURS", default=25.0),
    "BATCH_ADOPT_AFTER_SECONDS": env.float("BATCH_ADOPT_AFTER_SECONDS", default=120.0),
    "BATCH_AUTO_MIN_HOURS": env.float("BATCH_AUTO_MIN_HOURS", default=24.0),
    "BATCH_DEADLINE_MARGIN_SECONDS": env.float("BATCH_DEADLINE_MARGIN_SECONDS", default=3600.0),
    # An overloaded call's own back-off: base * 2**(its overloads so far), capped, half of it random.
    "OVERLOAD_BACKOFF_BASE_SECONDS": env.float("OVERLOAD_BACKOFF_BASE_SECONDS", default=0.5),
    "OVERLOAD_BACKOFF_MAX_SECONDS": env.float("OVERLOAD_BACKOFF_MAX_SECONDS", default=30.0),
    # Client timeout for one provider call; the lease is this plus a margin.
    "PROVIDER_TIMEOUT_SECONDS": env.float("PROVIDER_TIMEOUT_SECONDS", default=120.0),
    # The SDK's own OpenTelemetry spans per provider call (its ANTHROPIC_OPEN_TELEMETRY* variables
    # apply when on). Off by default: Conveyor reports calls through its metrics and logs, and the
    # SDK's spans (no-op ones too, with no tracer configured) were ~3% of a serving loop's CPU.
    "PROVIDER_TRACES": env.bool("PROVIDER_TRACES", default=False),
    "LEASE_MARGIN_SECONDS": env.float("LEASE_MARGIN_SECONDS", default=30.0),
    # Retry backoff for retryable errors: base * 2**(attempt-1), capped, half of it random.
    "RETRY_BASE_SECONDS": env.float("RETRY_BASE_SECONDS", default=2.0),
    "RETRY_MAX_SECONDS": env.float("RETRY_MAX_SECONDS", default=300.0),
    # Throttling (429/529) waits do not use a block's attempts; this bounds them separately.
    "MAX_THROTTLE_WAITS": env.int("MAX_THROTTLE_WAITS", default=50),
    # How long a 429 holds its lane when it says neither Retry-After nor when its limit resets.
    "THROTTLE_DEFAULT_SECONDS": env.float("THROTTLE_DEFAULT_SECONDS", default=10.0),
    # Dead-letter replay: a failed block goes back to work after base * 2**replays, at most this often.
    "FAILURE_REPLAY_BASE_SECONDS": env.float("FAILURE_REPLAY_BASE_SECONDS", default=300.0),
    "FAILURE_MAX_REPLAYS": env.int("FAILURE_MAX_REPLAYS", default=3),
    # The version stamp of every result (Block.pipeline_version) and of every run and pass: the
    # project's version, plus the build (e.g. a git short sha, CONVEYOR_BUILD) when the image says
    # it, so that a reseed can take back exactly what an older build produced.
    "PIPELINE_VERSION": pipeline_version(BASE_DIR / "pyproject.toml", env.str("CONVEYOR_BUILD", default="")),
    # Completion webhooks (apps/webhooks/): one POST's timeout; retries after base * 2**(attempt-1),
    # capped, half of it random, until GIVE_UP_HOURS after the event (then the delivery is `failed`);
    # how often beat looks for due deliveries (and for ended passes whose event was never recorded).
    "WEBHOOK_TIMEOUT_SECONDS": env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0),
    "WEBHOOK_RETRY_BASE_SECONDS": env.float("WEBHOOK_RETRY_BASE_SECONDS", default=30.0),
    "WEBHOOK_RETRY_MAX_SECONDS": env.float("WEBHOOK_RETRY_MAX_SECONDS", default=3600.0),
    "WEBHOOK_GIVE_UP_HOURS": env.float("WEBHOOK_GIVE_UP_HOURS", default=24.0),
    "WEBHOOK_SWEEP_SECONDS": env.float("WEBHOOK_SWEEP_SECONDS", default=30.0),
    # How often the team and member spend limits are checked for their 80% and 100% thresholds (a
    # signed `team.spend` webhook event and conveyor_team_spend_alert_level, once per crossing).
    "TEAM_SPEND_CHECK_SECONDS": env.float("TEAM_SPEND_CHECK_SECONDS", default=60.0),
}
# Health (apps/health/): readiness fails when the pump has not run to its end for this long (beat,
# or every worker of the control queue, is gone); each dependency check gives up after the timeout.
CONVEYOR["READY_BEAT_MAX_AGE_SECONDS"] = env.float(
    "READY_BEAT_MAX_AGE_SECONDS", default=max(60.0, 6 * CONVEYOR["PUMP_INTERVAL_SECONDS"]))
CONVEYOR["READY_CHECK_TIMEOUT_SECONDS"] = env.float("READY_CHECK_TIMEOUT_SECONDS", default=1.0)

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
# Live progress, GET /api/v1/runs/{id}/events/ (Server-Sent Events, apps/runs/reporting/live.py): a
# stream looks at its run this often and writes only what changed, a keep-alive comment when it has
# been quiet this long, and closes after MAX_SECONDS (the client reconnects after
# RETRY_MILLISECONDS). Each listener holds one web thread and one database connection while its stream
# is open: gunicorn serves with threads (gunicorn.conf.py), and MAX_SECONDS bounds how long any one
# stream keeps them.
RUN_EVENTS = {
    "POLL_SECONDS": env.float("RUN_EVENTS_POLL_SECONDS", default=1.0),
    "KEEPALIVE_SECONDS": env.float("RUN_EVENTS_KEEPALIVE_SECONDS", default=15.0),
    "MAX_SECONDS": env.float("RUN_EVENTS_MAX_SECONDS", default=300.0),
    "RETRY_MILLISECONDS": env.int("RUN_EVENTS_RETRY_MILLISECONDS", default=2000),
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "NUM_PROXIES": TRUSTED_PROXY_COUNT or None,
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
        "login": env.str("API_THROTTLE_LOGIN", default="30/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Conveyor API",
    "DESCRIPTION": (
        "Push large batches of text through LLMs reliably.\n\n"
        "Authenticate with `Authorization: Token <token>` (or a session); get a token from "
        "`POST /api/v1/auth/login/` with basic auth or a session, revoke it with "
        "`POST /api/v1/auth/logout/`. Tokens expire. Every error answers with "
        "one shape: `{\"error\": {\"code\", \"message\", \"fields\"?, \"line\"?, "
        "\"retry_after\"?}}`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from our own static files (CSP: nothing from elsewhere).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "apps.runs.models.RunStatus",
        "BlockStatusEnum": "apps.runs.models.BlockStatus",
        "PipelineStatusEnum": "apps.pipelines.models.PipelineStatus",
        "PipelineItemStatusEnum": "apps.pipelines.models.ItemStatus",
        "AttemptOutcomeEnum": "apps.runs.models.AttemptOutcome",
        "WebhookDeliveryStatusEnum": "apps.webhooks.models.DeliveryStatus",
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
        "batches": every("conveyor.runs.batches", conveyor["BATCH_POLL_SECONDS"]),
        "webhooks": every("conveyor.webhooks.deliver_due", conveyor["WEBHOOK_SWEEP_SECONDS"]),
        "pipelines": every("conveyor.pipelines.settle", conveyor["PIPELINE_SETTLE_SECONDS"]),
        "team-spend": every("conveyor.teams.spend_alerts", conveyor["TEAM_SPEND_CHECK_SECONDS"]),
        "retention": every("conveyor.runs.retention", conveyor["RETENTION_SWEEP_SECONDS"]),
    }


CELERY_BEAT_SCHEDULE = beat_schedule(CONVEYOR)

# Logs go to stderr, one line per record: `plain` (the default, for people) or `json` (one JSON object
# a line, for a log pipeline). Each record carries what is known of the work it is about (run_id,
# block_uid, attempt, correlation_id, key_id, event_code: apps/core/logcontext.py), and secrets are
# redacted from every record before any formatter sees it. Celery's own announcements of the
# periodic tasks (every few seconds) are dropped unless LOG_ROUTINE_TASKS is on.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "routine_tasks": {"()": "apps.core.logcontext.RoutineTaskFilter"},
        "context": {"()": "apps.core.logcontext.LogContextFilter"},
    },
    "formatters": {
        "plain": {"()": "apps.core.logcontext.PlainFormatter",
                  "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger",
                              "process": "pid"},
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ([] if env.bool("LOG_ROUTINE_TASKS", default=False) else ["routine_tasks"])
            + ["context"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # httpx2/httpcore log every request line at INFO; keep them quiet.
        "httpx2": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "aiohttp.access": {"level": "WARNING"},
        # django-axes announces itself and every login at INFO.
        "axes": {"level": "WARNING"},
        # gunicorn's workers load this configuration: their request and error lines take the same
        # handler (and format) as everything else.
        "gunicorn.access": {"handlers": ["console"], "propagate": False},
        "gunicorn.error": {"handlers": ["console"], "propagate": False},
    },
}
