"""Reads of the webhooks app. Ownership is enforced here: a delivery belongs to its run's owner, and
staff see every one."""

import json
from typing import Any

from django.db.models import QuerySet

from apps.webhooks.models import WebhookDelivery, WebhookSecret


def deliveries_visible_to(*, user: Any) -> QuerySet[WebhookDelivery]:
    rows = WebhookDelivery.objects.all()
    return rows if user is None or user.is_staff else rows.filter(run__owner_id=user.pk)


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
