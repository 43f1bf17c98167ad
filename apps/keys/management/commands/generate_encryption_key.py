"""`manage.py generate_encryption_key`: a new Fernet key for KEY_ENCRYPTION_KEYS, on stdout."""

from typing import Any

from django.core.management.base import BaseCommand

from apps.core.crypto import generate_key


class Command(BaseCommand):
    help = "Print a new key for KEY_ENCRYPTION_KEYS (put it first in the list to rotate to it)."
    # Runs when KEY_ENCRYPTION_KEYS is empty: that is when it is needed.
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        key = generate_key()
        self.stdout.write(key)
        self.stderr.write(f"Put it in .env as KEY_ENCRYPTION_KEYS={key}\nTo rotate later, put a new key "
                          "first (comma-separated, newest first) and run manage.py rotate_keys.")
