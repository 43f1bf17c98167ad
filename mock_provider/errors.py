"""Error bodies exactly as the Messages API sends them.

Every failure the mock produces, from validation to injected faults, is a MockAPIError; the app turns it
into `{"type":"error","error":{"type":...,"message":...},"request_id":...}` with the status and headers
it carries, so no code path can leak a traceback or an HTML error page to the client.
"""

import json
from collections.abc import Mapping

from aiohttp import web

# error.type for each status the API documents; statuses not listed fall back by class (4xx/5xx).
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Wording close to what the API says for each injected status, so logs of a soak run read naturally.
DEFAULT_MESSAGES: dict[int, str] = {
    400: "Invalid request (injected by the mock)",
    401: "invalid x-api-key",
    402: "Your credit balance is too low to access the Anthropic API.",
    403: "Your API key does not have permission to use the specified resource.",
    404: "Not found",
    408: "Request timed out",
    409: "Conflict",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "Number of request tokens has exceeded your per-minute rate limit (injected by the mock)",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Request timed out",
    529: "Overloaded",
}


def error_type_for(status: int) -> str:
    return ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


class MockAPIError(Exception):
    """An API error response: raise it anywhere in a handler."""

    def __init__(self, status: int, message: str | None = None, *, error_type: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.error_type = error_type or error_type_for(status)
        self.message = message if message is not None else DEFAULT_MESSAGES.get(status, "Error")
        self.headers = dict(headers or {})
        super().__init__(f"{status} {self.error_type}: {self.message}")


def invalid_request(message: str) -> MockAPIError:
    return MockAPIError(400, message)


def error_body(error_type: str, message: str, request_id: str) -> dict[str, object]:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}


def stream_error_frame(error_type: str = "overloaded_error", message: str = "Overloaded") -> bytes:
    """The `event: error` frame the API sends when a stream breaks after its 200 was sent."""
    data = json.dumps({"type": "error", "error": {"type": error_type, "message": message}})
    return f"event: error\ndata: {data}\n\n".encode()


def error_response(exc: MockAPIError, request_id: str) -> web.Response:
    body = json.dumps(error_body(exc.error_type, exc.message, request_id), separators=(",", ":"))
    return web.Response(status=exc.status, body=body.encode(), content_type="application/json",
                        headers=exc.headers)
