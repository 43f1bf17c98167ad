"""The ASGI entry point. Serves traffic, so it defaults to production settings (DEBUG off, real secrets
required); for development set DJANGO_SETTINGS_MODULE=config.settings.local."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = get_asgi_application()
