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
from django.db import transaction

from apps.audit.services import actor_for_command, record
from apps.keys.auditing import key_fields
from apps.keys.models import Provider
from apps.keys.serializers import KeyLimitsInputSerializer
from apps.keys.services import key_create


class Command(BaseCommand):
    help = "Store a provider key for a user. The secret is read from stdin (or prompted for, hidden)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="Username of the key's owner.")
        parser.add_argument("--label", required=True)
        parser.add_argument("--base-url", default="", help="Empty for the provider's official URL.")
        parser.add_argument("--provider", default=Provider.ANTHROPIC, choices=Provider.values)
        parser.add_argument("--tier", default="", help="the key's usage tier (tier_1 ... tier_4): its "
                            "documented limits are where pacing starts, until the provider's headers say")
        parser.add_argument("--rpm-limit", help="requests per minute at most (a cap that always applies)")
        parser.add_argument("--itpm-limit", help="input tokens per minute at most")
        parser.add_argument("--otpm-limit", help="output tokens per minute at most")
        parser.add_argument("--as", dest="as_user", metavar="USER",
                            help="the Conveyor user the audit trail records (default: the OS user)")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        try:
            owner = User.objects.get(**{User.USERNAME_FIELD: options["user"]})
        except User.DoesNotExist:
            raise CommandError(f"No user {options['user']!r}.") from None
        limits = self._limits(options)
        secret = self._read_secret()
        try:
            actor = actor_for_command(options.get("as_user"))
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        try:
            with transaction.atomic():
                key = key_create(owner=owner, label=options["label"], secret=secret,
                                 base_url=options["base_url"], provider=options["provider"], **limits)
                record(actor=actor, action="key.create", object_type="key", object_id=key.pk,
                       after=key_fields(key))
        except ValidationError as exc:
            problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            raise CommandError(problems) from None
        self.stdout.write(self.style.SUCCESS(
            f"Created key {key.pk} {key.label!r} (…{key.suffix}) for {owner}; validation queued."
        ))

    @staticmethod
    def _limits(options: dict[str, Any]) -> dict[str, Any]:
        """The limit options through the API's serializer: the same checks and messages."""
        data = {name: options[name] for name in ("tier", "rpm_limit", "itpm_limit", "otpm_limit")
                if options[name] not in (None, "")}
        serializer = KeyLimitsInputSerializer(data=data)
        if not serializer.is_valid():
            raise CommandError("; ".join(
                f"--{field.replace('_', '-')}: {' '.join(str(m) for m in messages)}"
                for field, messages in serializer.errors.items()))
        return dict(serializer.validated_data)

    def _read_secret(self) -> str:
        if sys.stdin.isatty():
            return getpass.getpass("Secret (not echoed): ")
        # The first line only: `echo "$KEY" | manage.py add_key ...` ends with a newline.
        secret = sys.stdin.readline().strip()
        if not secret:
            raise CommandError("No secret on stdin.")
        return secret
