#!/usr/bin/env python
"""Management commands. Defaults to local settings (a developer's machine: `.env`, DEBUG on); the
image, compose and anything that serves traffic use config.settings.production (wsgi, asgi, Celery).
`--settings=config.settings.production` or DJANGO_SETTINGS_MODULE picks other settings."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
