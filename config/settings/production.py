"""Anything that serves traffic: wsgi, asgi, the Celery app and the image default to these settings.

They refuse to start with secrets that are not real (the error says how to generate one), and turn
on what `manage.py check --deploy` asks for. Behind a TLS-terminating proxy (the usual case) the
proxy must set `X-Forwarded-Proto`; each security header can be tuned from the environment.
"""

from django.core.exceptions import ImproperlyConfigured

from config.security import (
    GENERATE_FERNET_KEY,
    GENERATE_SECRET_KEY,
    bad_encryption_keys,
    weak_secret_key_reason,
)
from config.staticfiles import collected

from .base import *  # noqa: F403
from .base import DEV_ENCRYPTION_KEY, KEY_ENCRYPTION_KEYS, SECRET_KEY, env

DEBUG = False

if reason := weak_secret_key_reason(SECRET_KEY):
    raise ImproperlyConfigured(
        f"SECRET_KEY is not fit for production: {reason}. Generate one with:\n    {GENERATE_SECRET_KEY}"
    )
if reason := bad_encryption_keys(KEY_ENCRYPTION_KEYS, development_key=DEV_ENCRYPTION_KEY):
    raise ImproperlyConfigured(
        f"KEY_ENCRYPTION_KEYS is not fit for production: {reason}. It is a comma-separated list of "
        f"Fernet keys, newest first; generate one with:\n    {GENERATE_FERNET_KEY}"
    )

# --- HTTPS -------------------------------------------------------------------------------------------
# The proxy in front terminates TLS and says so in X-Forwarded-Proto; set it to "" if nothing does
# (then Django only trusts a direct TLS connection, which gunicorn here does not make).
_proxy_ssl_header = env.str("SECURE_PROXY_SSL_HEADER", default="HTTP_X_FORWARDED_PROTO")
SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header, "https") if _proxy_ssl_header else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Health checks from inside the network may come in over plain http (regular expressions on the path).
# The probes are answered before SecurityMiddleware anyway (apps.health.middleware); they are listed
# here too so that they stay reachable over http if that middleware is ever moved.
SECURE_REDIRECT_EXEMPT = env.list("SECURE_REDIRECT_EXEMPT", default=[r"^healthz$", r"^readyz$"])
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
# The admin's and the API's forms posted from these origins (e.g. https://conveyor.example.com).
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SESSION_COOKIE_HTTPONLY = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Static files ------------------------------------------------------------------------------------
# Served by whitenoise from the image (collected at build time), compressed, with hashed names that
# are cached forever: no separate web server needed for them. (Locally, runserver serves them.)
MIDDLEWARE = [*MIDDLEWARE]  # noqa: F405
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                  "whitenoise.middleware.WhiteNoiseMiddleware")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "config.staticfiles.CollectedOrSourceStaticFilesStorage"},
}
# Production settings run from a source checkout before collectstatic: the files are found in the apps
# (config/staticfiles.py says so once, with the command that collects them).
WHITENOISE_USE_FINDERS = not collected(STATIC_ROOT)  # noqa: F405
