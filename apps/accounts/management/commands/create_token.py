"""`manage.py create_token --user U [--days N]`: a new API token for a user, printed once.

For scripts and first setup; users can also get one from `POST /api/v1/auth/login/`. Only a hash is
stored: keep the printed token, it cannot be shown again. Revoke it in the admin (API tokens) or with
`POST /api/v1/auth/logout/`."""

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.services import default_ttl, token_create


class Command(BaseCommand):
    help = "Create an API token for a user and print it (once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="Username of the token's owner.")
        parser.add_argument("--days", type=float, default=None,
                            help=f"How long the token is valid (default: {default_ttl().days} days).")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: options["user"]})
        except User.DoesNotExist:
            raise CommandError(f"No user {options['user']!r}.") from None
        ttl = timedelta(days=options["days"]) if options["days"] is not None else None
        try:
            issued = token_create(user=user, ttl=ttl)
        except ValidationError as exc:
            raise CommandError("; ".join(" ".join(m) for m in exc.message_dict.values())) from None
        self.stderr.write(f"Token for {user}, valid until {issued.expiry:%Y-%m-%d %H:%M %Z}; "
                          "shown once, only its hash is stored:")
        self.stdout.write(issued.token)
