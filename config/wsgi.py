"""The WSGI entry point (gunicorn config.wsgi). Serves traffic, so it defaults to production settings
(DEBUG off, real secrets required); for development set
DJANGO_SETTINGS_MODULE=config.settings.local."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = get_wsgi_application()
