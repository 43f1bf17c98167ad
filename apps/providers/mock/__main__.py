"""`python -m apps.providers.mock --port N ...`: the mock without Django's startup (see cli.py)."""

from apps.providers.mock.cli import main

main()
