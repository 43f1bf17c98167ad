"""`manage.py rotate_keys`: re-encrypt every stored secret (provider keys, webhook signing secrets) under
the newest KEY_ENCRYPTION_KEYS entry.

Rotation: put the new key first in KEY_ENCRYPTION_KEYS and keep the old ones after it, deploy, run this
command, then remove the old keys (see docs/keys.md). Safe to run again at any time.

It lives in the webhooks app because it rotates the secrets of two apps, and webhooks is the one that
may import both (keys sit below it: see docs/architecture.md, "Apps in layers").
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.keys.services import keys_reencrypt
from apps.webhooks.services import webhook_secrets_reencrypt


class Command(BaseCommand):
    help = "Re-encrypt every stored provider key under the newest KEY_ENCRYPTION_KEYS entry."

    def handle(self, *args: Any, **options: Any) -> None:
        result = keys_reencrypt()
        self.stdout.write(
            f"Re-encrypted {result.reencrypted} key(s) under the newest encryption key"
            + (f"; {result.changed_meanwhile} changed meanwhile (already current)"
               if result.changed_meanwhile else "")
            + "."
        )
        webhooks = webhook_secrets_reencrypt()
        if webhooks.reencrypted or webhooks.unreadable:
            self.stdout.write(f"Re-encrypted {webhooks.reencrypted} webhook signing secret(s).")
        if webhooks.unreadable:
            ids = ", ".join(str(i) for i in webhooks.unreadable)
            self.stderr.write(f"{len(webhooks.unreadable)} webhook secret(s) cannot be decrypted (ids: "
                              f"{ids}); their owners must rotate them (POST /api/v1/webhooks/secret/).")
        if result.unreadable:
            ids = ", ".join(str(i) for i in result.unreadable)
            raise CommandError(
                f"{len(result.unreadable)} key(s) cannot be decrypted with any configured encryption key "
                f"(ids: {ids}). Put back the key they were encrypted with, or have their owners enter "
                "them again."
            )
