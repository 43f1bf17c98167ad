"""`manage.py delete_user USERNAME [--as ADMIN]`: delete a user and everything they own (keys, runs,
pipelines, webhook secret) in the background; their audit records stay. Refused while any of their
runs may still work. Run it again to finish a deletion a lost worker left half-way (recorded again)."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.deletion import user_delete
from apps.audit.services import actor_for_command
from apps.core.errors import StateConflict


class Command(BaseCommand):
    help = "Delete a user and everything they own, in the background (their audit records stay)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USER",
            help="the Conveyor user the audit trail records (default: the OS user)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: opts["username"]}).first()
        if user is None:
            raise CommandError(f"no user {opts['username']!r}")
        try:
            actor = actor_for_command(opts.get("as_user"))
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        try:
            user_delete(user_id=user.pk, actor=actor)
        except StateConflict as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{user.get_username()}: deleting in the background (keys, runs, pipelines, "
            "webhook secret); audit records stay"
        )
