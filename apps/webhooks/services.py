"""Writes of the webhooks app: the signing secret, recording an ended pass's event, and delivering it.

Delivery is at least once. A pass's event is one row (unique per run and pass, with an event id that
never changes), written when `run_finished` is sent, or by the beat sweep if that moment was lost (a
process that died right after the run ended). Each attempt first takes the row with one conditional
write that moves `next_attempt_at` past the end of the call (its lease) and counts the attempt; the
result is written only if the row is still that attempt's (`attempts` unchanged, still pending). A
sender that dies mid-call leaves a row that falls due again when the lease ends, and the sweep sends
it. A receiver may therefore see an event twice; the `webhook-id` header tells it so. How a delivery
moves (claim, deliver, give up, retry later, redeliver) is apps.webhooks.transitions; this module
decides when."""

import logging
import random
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from celery import current_app
from cryptography.fernet import InvalidToken
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from apps.core.addresses import url_host
from apps.core.crypto import RotationResult, decrypt_secret, encrypt_secret, reencrypt_secret
from apps.core.ids import RunId
from apps.runs.models import Run, RunPass
from apps.teams.models import Team
from apps.webhooks.models import WebhookDelivery, WebhookSecret
from apps.webhooks.payload import EVENT_TYPE, TEAM_SPEND_EVENT, encode, run_finished_event, team_spend_event
from apps.webhooks.sending import SendOutcome, post_event
from apps.webhooks.signing import event_id, generate_secret, signed_headers

logger = logging.getLogger(__name__)

DELIVER_TASK = "conveyor.webhooks.deliver"
# Per sweep: ended passes recorded late, and due deliveries queued; the rest wait for the next tick.
RECOVERY_BATCH = 200
DUE_BATCH = 200


def _knob(name: str) -> float:
    return float(settings.CONVEYOR[name])


def _give_up_after() -> timedelta:
    return timedelta(hours=_knob("WEBHOOK_GIVE_UP_HOURS"))


def _lease() -> timedelta:
    # httpx's timeout bounds each phase (connect, write, read), so a call may take a few of them.
    return timedelta(seconds=4 * _knob("WEBHOOK_TIMEOUT_SECONDS") + 30)


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones: exponential, capped, half of it
    random so that deliveries that failed together do not come back together."""
    delay = min(_knob("WEBHOOK_RETRY_MAX_SECONDS"), _knob("WEBHOOK_RETRY_BASE_SECONDS") * 2 ** (attempts - 1))
    return delay / 2 + random.uniform(0, delay / 2)


# --- the signing secret ------------------------------------------------------------------------------

@transaction.atomic
def webhook_secret_rotate(*, owner: Any) -> tuple[WebhookSecret, str]:
    """Create the owner's signing secret, or replace it (the old one stops signing at once). Returns
    the row and the secret itself: the only time it is ever returned."""
    secret = generate_secret()
    row, _ = WebhookSecret.objects.update_or_create(
        owner=owner, defaults={"secret_ciphertext": encrypt_secret(secret), "suffix": secret[-4:],
                               "created_at": timezone.now()},
    )
    logger.info("webhook secret of user %s set (suffix %s)", owner.pk, row.suffix)
    return row, secret


def webhook_secrets_reencrypt() -> RotationResult:
    """Every signing secret under the newest KEY_ENCRYPTION_KEYS entry (manage.py rotate_keys), one
    conditional UPDATE each, as for provider keys (apps.keys.services.keys_reencrypt)."""
    result = RotationResult()
    for row_id, ciphertext in WebhookSecret.objects.order_by("pk").values_list("pk", "secret_ciphertext"):
        try:
            rotated = reencrypt_secret(ciphertext)
        except InvalidToken:
            result.unreadable.append(row_id)
            continue
        if WebhookSecret.objects.filter(pk=row_id, secret_ciphertext=ciphertext).update(
                secret_ciphertext=rotated):
            result.reencrypted += 1
        else:
            result.changed_meanwhile += 1
    return result


def webhook_secret_of(*, owner_id: Any) -> str | None:
    row = WebhookSecret.objects.filter(owner_id=owner_id).only("secret_ciphertext").first()
    return decrypt_secret(row.secret_ciphertext) if row is not None else None


# --- recording events ----------------------------------------------------------------------------------

def delivery_record(*, run_id: RunId, pass_number: int, status: str | None = None
                    ) -> WebhookDelivery | None:
    """The event of a run's ended pass, written once (None if the run has no webhook_url); its first
    attempt is queued after commit. Recording it again returns the row already there."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None or not run.webhook_url:
        return None
    existing = WebhookDelivery.objects.filter(run_id=run_id, pass_number=pass_number).first()
    if existing is not None:
        return existing
    run_pass = RunPass.objects.filter(run_id=run_id, number=pass_number).first()
    status = status or (run_pass.ended_status if run_pass is not None else "") or run.status
    now = timezone.now()
    body = encode(run_finished_event(run=run, run_pass=run_pass, pass_number=pass_number, status=status))
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                run=run, pass_number=pass_number, event_id=event_id(run_id=run.pk, pass_number=pass_number),
                event_type=EVENT_TYPE, url=run.webhook_url, body=body, next_attempt_at=now,
                give_up_at=now + _give_up_after(), created_at=now,
            )
            # robust: a broker outage must not undo the event; the sweep queues it later.
            transaction.on_commit(lambda: _enqueue(delivery.pk), robust=True)
    except IntegrityError:  # recorded meanwhile by someone else (the signal and the sweep raced)
        return WebhookDelivery.objects.get(run_id=run_id, pass_number=pass_number)
    logger.info("webhook event %s recorded: run %s pass %d %s, to %s", delivery.event_id, run_id,
                pass_number, status, url_host(run.webhook_url))
    return delivery


def team_spend_record(*, team_id: int, user_id: int | None, level: int, spent_usd: Decimal,
                      limit_usd: Decimal, period: str, window_days: int | None, period_start: datetime
                      ) -> WebhookDelivery | None:
    """The `team.spend` event of a threshold crossing, to the team's webhook_url (None: it has none).
    Its id is fixed by the limit, the threshold and the period, so a crossing recorded twice is one
    event."""
    team = Team.objects.filter(pk=team_id).first()
    if team is None or not team.webhook_url:
        return None
    member = None
    if user_id is not None:
        member = get_user_model().objects.filter(pk=user_id).values_list("username", flat=True).first()
    now = timezone.now()
    body = encode(team_spend_event(team_id=team.pk, team_name=team.name, member=member, level=level,
                                   spent_usd=spent_usd, limit_usd=limit_usd, period=period,
                                   window_days=window_days, period_start=period_start, at=now))
    # A rolling window's start moves with time: its crossings are told apart by the day.
    moment = period_start.date().isoformat() if window_days else period_start.isoformat()
    msg_id = "msg_" + uuid.uuid5(uuid.NAMESPACE_URL, f"team:{team.pk}:{user_id}:{level}:{moment}").hex
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                team=team, pass_number=0, event_id=msg_id, event_type=TEAM_SPEND_EVENT,
                url=team.webhook_url, body=body, next_attempt_at=now, give_up_at=now + _give_up_after(),
                created_at=now)
            transaction.on_commit(lambda: _enqueue(delivery.pk), robust=True)
    except IntegrityError:  # this crossing was recorded already
        return WebhookDelivery.objects.get(event_id=msg_id)
    logger.info("webhook event %s recorded: team %s spend at %d%%, to %s", msg_id, team.pk, level,
                url_host(team.webhook_url))
    return delivery


def deliveries_record_missing(*, now: datetime | None = None) -> int:
    """Record the events of recently ended passes that have none: `run_finished` is sent after
    commit, in memory, so a process that died at that moment took it along."""
    now = now or timezone.now()
    has_delivery = WebhookDelivery.objects.filter(run_id=OuterRef("run_id"), pass_number=OuterRef("number"))
    missing = (RunPass.objects.filter(finished_at__gte=now - _give_up_after(), finished_at__lte=now)
               .exclude(run__webhook_url="").exclude(Exists(has_delivery))
               .values_list("run_id", "number", "ended_status")[:RECOVERY_BATCH])
    recorded = 0
    for run_id, number, ended in missing:
        if delivery_record(run_id=run_id, pass_number=number, status=ended or None) is not None:
            recorded += 1
    return recorded


def _enqueue(delivery_id: int, *, expires: float | None = None) -> None:
    # By the task's name: the task module imports this one, never the other way round.
    # None is no expiry, which Celery takes and its stubs leave out.
    current_app.signature(DELIVER_TASK, args=(delivery_id,)).apply_async(expires=expires)  # type: ignore[arg-type]


# --- delivering ----------------------------------------------------------------------------------------

def _claim(delivery_id: int, *, now: datetime) -> WebhookDelivery | None:
    """Take a due pending delivery for one attempt, or None (not due, done, or taken by another)."""
    return WebhookDelivery.objects.filter(pk=delivery_id).claim(now=now, lease_until=now + _lease())


def delivery_attempt(*, delivery_id: int) -> WebhookDelivery | None:
    """Make one attempt at a due delivery and record how it went. Returns the row as recorded, or None
    if it was not due (already delivered, given up, waiting, or being tried elsewhere)."""
    now = timezone.now()
    row = _claim(delivery_id, now=now)
    if row is None:
        return None
    signer: int | None
    if row.run_id is not None:
        signer = Run.objects.values_list("owner_id", flat=True).get(pk=row.run_id)
    else:  # a team's event: signed by the admin who set the team's webhook_url
        signer = Team.objects.filter(pk=row.team_id or 0).values_list("webhook_signer_id", flat=True).first()
    secret = webhook_secret_of(owner_id=signer) if signer is not None else None
    if secret is None:
        outcome = SendOutcome(False, error="no_secret",
                              detail=f"the {'run' if row.run_id else 'team webhook'}'s owner has no webhook "
                                     "signing secret: create one with POST /api/v1/webhooks/secret/")
    else:
        headers = signed_headers(secret=secret, msg_id=row.event_id, body=row.body, at=now)
        outcome = post_event(url=row.url, body=row.body, headers=headers,
                             timeout=_knob("WEBHOOK_TIMEOUT_SECONDS"))
    return _record(row, outcome)


def _record(row: WebhookDelivery, outcome: SendOutcome) -> WebhookDelivery:
    now = timezone.now()
    # Fenced by the attempt: a redelivery or another sender that took the row since then wins.
    rows = WebhookDelivery.objects.filter(pk=row.pk)
    if outcome.delivered:
        matched = rows.deliver(attempts=row.attempts, now=now, outcome=outcome)
    elif now >= row.give_up_at:
        matched = rows.give_up(attempts=row.attempts, outcome=outcome)
    else:
        at = min(now + timedelta(seconds=retry_delay(row.attempts)), row.give_up_at)
        matched = rows.retry_later(attempts=row.attempts, at=at, outcome=outcome)
    level = logging.INFO if outcome.delivered else logging.WARNING
    logger.log(level, "webhook %s (run %s pass %d) attempt %d to %s: %s%s", row.event_id, row.run_id,
               row.pass_number, row.attempts, url_host(row.url),
               "delivered" if outcome.delivered else f"{outcome.error}: {outcome.detail}",
               "" if matched else " (not recorded: the delivery was taken over meanwhile)")
    row.refresh_from_db()
    return row


def deliveries_due(*, now: datetime | None = None, limit: int = DUE_BATCH) -> list[int]:
    now = now or timezone.now()
    due = WebhookDelivery.objects.due(now).order_by("next_attempt_at")
    return list(due.values_list("pk", flat=True)[:limit])


def deliveries_sweep() -> dict[str, int]:
    """The beat task's work: record lost events, then queue an attempt for every due delivery."""
    recorded = deliveries_record_missing()
    due = deliveries_due()
    for delivery_id in due:
        # A message still queued at the next sweep is stale: that sweep queues the delivery again.
        _enqueue(delivery_id, expires=_knob("WEBHOOK_SWEEP_SECONDS") * 2)
    return {"recorded": recorded, "queued": len(due)}


@transaction.atomic
def delivery_team_id(row: WebhookDelivery) -> int | None:
    """The team of a delivery (a team's event) or of its run, for its audit row."""
    if row.team_id is not None:
        return int(row.team_id)
    if row.run_id is None:
        return None
    return WebhookDelivery.objects.filter(pk=row.pk).values_list("run__team_id", flat=True).first()


def delivery_redeliver(*, delivery_id: int) -> WebhookDelivery:
    """Send the event again now, whatever its state (delivered, failed, waiting): the same event id,
    a new timestamp and signature. Its retry window starts again from now."""
    rows = WebhookDelivery.objects.filter(pk=delivery_id)
    row = rows.select_for_update().get()
    now = timezone.now()
    rows.redeliver(now=now, give_up_at=max(row.give_up_at, now + _give_up_after()))
    row.refresh_from_db()
    transaction.on_commit(lambda: _enqueue(row.pk), robust=True)  # else the sweep queues it
    logger.info("webhook %s (run %s pass %d) redelivery requested", row.event_id, row.run_id,
                row.pass_number)
    return row
