"""The Celery app (workers, beat, flower). Serves traffic, so it defaults to production settings (DEBUG
off, real secrets required); for development set DJANGO_SETTINGS_MODULE=config.settings.local."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
