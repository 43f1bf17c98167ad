"""Renderers beyond JSON."""

import json
from collections.abc import Mapping
from typing import Any

from rest_framework.renderers import BaseRenderer

from config.api.sse import sse_event


class NDJSONRenderer(BaseRenderer):
    """Newline-delimited JSON. Streamed exports write their lines themselves; this renders the error
    responses of such endpoints (and makes `Accept: application/x-ndjson` negotiable)."""

    media_type = "application/x-ndjson"
    format = "jsonl"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: Mapping[str, Any] | None = None) -> bytes:
        if data is None:
            return b""
        return (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class EventStreamRenderer(BaseRenderer):
    """Server-Sent Events. Makes `Accept: text/event-stream` negotiable for the streams (which write
    their own frames, config/api/sse.py) and renders their error responses as one `error` event, whose
    status (401, 404) is what EventSource acts on: it stops instead of reconnecting."""

    media_type = "text/event-stream"
    format = "sse"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: Mapping[str, Any] | None = None) -> bytes:
        return b"" if data is None else sse_event(data, event="error").encode()


class _ExportRenderer(BaseRenderer):
    """A streamed export's format (the view writes its bytes itself); makes `?format=` and `Accept`
    negotiable, and renders the endpoint's error responses as JSON."""

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: Mapping[str, Any] | None = None) -> bytes:
        if data is None:
            return b""
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Type"] = "application/json"
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


class CSVRenderer(_ExportRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"


class ParquetRenderer(_ExportRenderer):
    media_type = "application/vnd.apache.parquet"
    format = "parquet"
    charset = None
