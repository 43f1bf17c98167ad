"""`manage.py add_key --user U --label L [--base-url URL] < secret`

The secret is read from stdin, never from the command line: argv is visible to every user of the
machine (ps, /proc) and lands in shell history.
"""

import getpass
import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.keys.models import Provider
from apps.keys.services import key_create


class Command(BaseCommand):
    help = "Store a provider key for a user. The secret is read from stdin (or prompted for, hidden)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="Username of the key's owner.")
        parser.add_argument("--label", required=True)
        parser.add_argument("--base-url", default="", help="Empty for the provider's official URL.")
        parser.add_argument("--provider", default=Provider.ANTHROPIC, choices=Provider.values)

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        try:
            owner = User.objects.get(**{User.USERNAME_FIELD: options["user"]})
        except User.DoesNotExist:
            raise CommandError(f"No user {options['user']!r}.") from None
        secret = self._read_secret()
        try:
            key = key_create(owner=owner, label=options["label"], secret=secret,
                             base_url=options["base_url"], provider=options["provider"])
        except ValidationError as exc:
            problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            raise CommandError(problems) from None
        self.stdout.write(self.style.SUCCESS(
            f"Created key {key.pk} {key.label!r} (…{key.suffix}) for {owner}; validation queued."
        ))

    def _read_secret(self) -> str:
        if sys.stdin.isatty():
            return getpass.getpass("Secret (not echoed): ")
        # The first line only: `echo "$KEY" | manage.py add_key ...` ends with a newline.
        secret = sys.stdin.readline().strip()
        if not secret:
            raise CommandError("No secret on stdin.")
        return secret
