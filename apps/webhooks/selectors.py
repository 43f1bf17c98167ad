"""Reads of the webhooks app. A delivery is its run's: whoever may read (change) the run may read
(redeliver) it (apps/teams/access.py); a team's `team.spend` deliveries are read by staff with the
permission."""

import json
from typing import Any

from django.db.models import QuerySet

from apps.teams.access import visible_to
from apps.webhooks.models import WebhookDelivery, WebhookSecret


def deliveries_visible_to(*, user: Any, write: bool = False) -> QuerySet[WebhookDelivery]:
    return visible_to(user, WebhookDelivery.objects.all(), write=write)


def deliveries_list(*, user: Any, run: Any = None, status: str | None = None) -> QuerySet[WebhookDelivery]:
    rows = deliveries_visible_to(user=user)
    if run is not None:
        rows = rows.filter(run_id=run)
    if status:
        rows = rows.filter(status=status)
    return rows.order_by("-created_at", "-pk")


def webhook_secret_get(*, owner: Any) -> WebhookSecret | None:
    return WebhookSecret.objects.filter(owner_id=owner.pk).defer("secret_ciphertext").first()


def delivery_payload(delivery: WebhookDelivery) -> Any:
    return json.loads(delivery.body)
