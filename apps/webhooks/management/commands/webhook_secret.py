"""`manage.py webhook_secret --user U [--rotate]`: a user's webhook signing secret.

Without --rotate it says whether the user has one (its suffix); with --rotate it creates or replaces it
and prints the secret, once, on standard output (nothing else goes there, so it can be piped)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from apps.audit.services import actor_for_command, record
from apps.runs.management.commandline import user_named
from apps.webhooks.selectors import webhook_secret_get
from apps.webhooks.services import webhook_secret_rotate


class Command(BaseCommand):
    help = "Show a user's webhook signing secret's suffix, or --rotate to create/replace it (printed once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument("--rotate", action="store_true",
                            help="create or replace the secret and print it (the old one stops at once)")
        parser.add_argument("--as", dest="as_user", metavar="USER",
                            help="the Conveyor user the audit trail records (default: the OS user)")

    def handle(self, *args: Any, **opts: Any) -> None:
        user = user_named(opts["user"])
        if opts["rotate"]:
            try:
                actor = actor_for_command(opts.get("as_user"))
            except LookupError as exc:
                raise CommandError(str(exc)) from None
            with transaction.atomic():
                existed = webhook_secret_get(owner=user)
                row, secret = webhook_secret_rotate(owner=user)
                record(actor=actor, action="webhook_secret.rotate", object_type="webhook_secret",
                       object_id=user.pk, before={"suffix": existed.suffix} if existed else {},
                       after={"suffix": row.suffix})
            self.stdout.write(secret)
            self.stderr.write(f"webhook secret of {user.get_username()} set (…{row.suffix}); it is not "
                              "shown again")
            return
        current = webhook_secret_get(owner=user)
        if current is None:
            self.stdout.write(f"{user.get_username()} has no webhook secret; create one with --rotate")
        else:
            self.stdout.write(f"whsec_…{current.suffix} (since {current.created_at:%Y-%m-%d %H:%M %Z})")
