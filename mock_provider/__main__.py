"""`python -m mock_provider --port N ...`: the mock without Django's startup (see cli.py)."""

from mock_provider.cli import main

main()
