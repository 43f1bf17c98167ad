"""Standard Webhooks signatures (https://www.standardwebhooks.com), made by the `standardwebhooks`
library itself, so a receiver verifies with the same code: `Webhook(secret).verify(body, headers)`.

    webhook-id: msg_...           the event's id, the same on every attempt (dedupe on it)
    webhook-timestamp: 1764634000 seconds since the epoch, of this attempt
    webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">
"""

import base64
import secrets
import uuid
from datetime import datetime

from standardwebhooks.webhooks import Webhook

from apps.core.ids import RunId

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# Event ids are derived from (run, pass): the same event always has the same id, even if its row
# had to be written again.
EVENT_NAMESPACE = uuid.UUID("5b0e8f0e-3c1f-4d0a-9a51-6f1f0c0a7e12")


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def event_id(*, run_id: RunId, pass_number: int) -> str:
    return "msg_" + uuid.uuid5(EVENT_NAMESPACE, f"{run_id}:{pass_number}").hex


def signed_headers(*, secret: str, msg_id: str, body: str, at: datetime) -> dict[str, str]:
    timestamp = int(at.timestamp())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=body),
    }
