"""Renderers beyond JSON."""

import json
from typing import Any

from rest_framework.renderers import BaseRenderer


class NDJSONRenderer(BaseRenderer):
    """Newline-delimited JSON. Streamed exports write their lines themselves; this renders the error
    responses of such endpoints (and makes `Accept: application/x-ndjson` negotiable)."""

    media_type = "application/x-ndjson"
    format = "jsonl"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: dict[str, Any] | None = None) -> bytes:
        if data is None:
            return b""
        return (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
