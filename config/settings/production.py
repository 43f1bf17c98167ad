from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DEV_ENCRYPTION_KEY, KEY_ENCRYPTION_KEYS, SECRET_KEY, env

DEBUG = False
if SECRET_KEY.startswith("django-insecure"):
    raise ImproperlyConfigured("SECRET_KEY must be set in production.")
if not KEY_ENCRYPTION_KEYS or DEV_ENCRYPTION_KEY in KEY_ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "KEY_ENCRYPTION_KEYS must be set in production (comma-separated Fernet keys, newest first)."
    )
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
