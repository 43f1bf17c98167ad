"""A developer's machine: reads `.env` if there is one, DEBUG on unless `.env` says otherwise."""

import os

os.environ.setdefault("DJANGO_READ_DOT_ENV_FILE", "true")

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
