"""A developer's machine: reads `.env.local` if there is one (never `.env`, which is compose's, with
production values), DEBUG on unless it says otherwise."""

import os

os.environ.setdefault("DJANGO_READ_DOT_ENV_FILE", "true")
os.environ.setdefault("DJANGO_DOT_ENV_FILE", ".env.local")

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
