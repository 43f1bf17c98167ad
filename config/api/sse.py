"""The Server-Sent Events wire format (https://html.spec.whatwg.org/multipage/server-sent-events.html):
what a stream writes and what EventSource (or `curl -N`) reads. Frames end with a blank line; a line
starting with a colon is a comment, which clients ignore and proxies see as traffic (a keep-alive)."""

import json
from typing import Any

from rest_framework.utils.encoders import JSONEncoder

MEDIA_TYPE = "text/event-stream"


def _json(data: Any) -> str:
    # DRF's encoder: Decimals, datetimes and UUIDs as the JSON API writes them.
    return json.dumps(data, cls=JSONEncoder, ensure_ascii=False, separators=(",", ":"))


def sse_event(data: Any, *, event: str | None = None, event_id: str | None = None) -> str:
    """One event whose data is `data` as JSON (on one line: JSON never needs a raw newline)."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append(f"data: {_json(data)}")
    return "\n".join(lines) + "\n\n"


def sse_comment(text: str) -> str:
    return "".join(f": {line}\n" for line in text.splitlines() or [""]) + "\n"


def sse_retry(milliseconds: int) -> str:
    """How long a client waits before it reconnects after the stream closes."""
    return f"retry: {int(milliseconds)}\n\n"
