"""Thin Celery adapters for webhook delivery."""

from celery import shared_task

from apps.webhooks.services import DELIVER_TASK, deliveries_sweep, delivery_attempt


# One POST with a short timeout (per phase), within these limits. Running it twice is harmless: only
# the call that takes the row (a conditional write) sends.
@shared_task(name=DELIVER_TASK, time_limit=120, soft_time_limit=100)
def deliver_webhook(delivery_id: int) -> dict:
    row = delivery_attempt(delivery_id=delivery_id)
    if row is None:
        return {"delivery": delivery_id, "attempted": False}
    return {"delivery": delivery_id, "attempted": True, "status": row.status, "error": row.last_error}


# Beat runs this every WEBHOOK_SWEEP_SECONDS with `expires` shorter than that.
@shared_task(name="conveyor.webhooks.deliver_due", time_limit=60, soft_time_limit=50)
def deliver_due_webhooks() -> dict:
    """Record events lost with a process, and queue an attempt for every due delivery."""
    return deliveries_sweep()

