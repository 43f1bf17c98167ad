"""One error shape for every 4xx the API answers:

    {"error": {"code": "validation_error", "message": "max_tokens: must be between 1 and 128000",
               "fields": {"max_tokens": ["must be between 1 and 128000"]}, "line": 7}}

`fields` appears on validation errors only, with nested errors flattened to dotted paths
(`blocks.3.input`); `line` only when a line of an uploaded file is at fault; `retry_after` (seconds)
only on 429. Installed as DRF's EXCEPTION_HANDLER, so it covers authentication, permissions, parsing,
throttling and 404s as well as the views' own errors.

The services' own errors are mapped here, once, so a view never catches them: a `StateConflict`
("the state does not allow this") is a 409 with the conflict's code; an `Unprocessable` ("this
contradicts an earlier request") is a 422 with its code; Django's `ValidationError` (bad input found
by a service) is a 400 naming the fields.
"""

import math
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from apps.core.errors import InvalidInput, StateConflict, Unprocessable


class Conflict(exceptions.APIException):
    """The target is not in a state that allows the operation (e.g. canceling a finished run)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The resource is not in a state that allows this operation."
    default_code = "conflict"


class UnprocessableEntity(exceptions.APIException):
    """Well formed, but it contradicts an earlier request (e.g. an Idempotency-Key reused)."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The request contradicts an earlier one."
    default_code = "unprocessable"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request is too large."
    default_code = "payload_too_large"


class InputError(exceptions.ValidationError):
    """A validation error that can also name the line of an uploaded file at fault."""

    def __init__(self, detail: Any = None, *, line: int | None = None):
        super().__init__(detail)
        self.line = line


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable: e.g. validation_error, not_found.")
    message = serializers.CharField(help_text="Human-readable summary, naming the field at fault.")
    # A field named `fields` (the error shape's word): DRF's metaclass takes it off the class, so it
    # does not hide Serializer.fields.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()), required=False,
        help_text="Validation errors by field; nested fields as dotted paths (blocks.3.input).",
    )
    line = serializers.IntegerField(required=False, help_text="The line of an uploaded file at fault.")
    retry_after = serializers.IntegerField(required=False, help_text="Seconds to wait (429 only).")


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


def validated_input(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """Run an input serializer over request data (or query parameters); its errors are a 400."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _as_api_exception(exc: Exception) -> exceptions.APIException | None:
    if isinstance(exc, exceptions.APIException):
        return exc
    if isinstance(exc, StateConflict):
        return Conflict(exc.message, code=exc.code)
    if isinstance(exc, Unprocessable):
        return UnprocessableEntity(exc.message, code=exc.code)
    if isinstance(exc, InvalidInput):
        return InputError({exc.field or "non_field_errors": [exc.message]}, line=exc.line)
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return InputError(fields)
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(str(exc) or None)
    # Raised by Django's own request parsing (e.g. too many multipart form fields).
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, SuspiciousOperation):
        return exceptions.ParseError(str(exc) or None)
    return None


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"dotted.path": [messages]}."""
    items: Iterable[tuple[Any, Any]]
    if isinstance(detail, dict):
        items = detail.items()
    elif isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        items = enumerate(detail)
    else:
        messages = detail if isinstance(detail, list) else [detail]
        return {prefix or "non_field_errors": [str(m) for m in messages]}
    flat: dict[str, list[str]] = {}
    for key, value in items:
        if value in ({}, []):  # a valid item in a list of items
            continue
        # A nested object's non_field_errors are about the object as a whole: named by its path.
        nested_whole = key == "non_field_errors" and prefix
        path = prefix if nested_whole else (f"{prefix}.{key}" if prefix else str(key))
        for name, messages in flatten_errors(value, path).items():
            flat.setdefault(name, []).extend(messages)
    return flat


def _message(exc: exceptions.APIException, fields: dict[str, list[str]] | None) -> str:
    if fields:
        (name, messages), *rest = fields.items()
        first = messages[0] if name == "non_field_errors" else f"{name}: {messages[0]}"
        more = sum(len(m) for _, m in rest) + len(messages) - 1
        return f"{first} (and {more} more)" if more else first
    detail = exc.detail
    if isinstance(detail, list | dict):
        return "; ".join(m for ms in flatten_errors(detail).values() for m in ms)
    return str(detail)


def _code(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.ValidationError):
        return "validation_error"
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code


def error_response(exc: exceptions.APIException) -> Response:
    fields = flatten_errors(exc.detail) if isinstance(exc, exceptions.ValidationError) else None
    body: dict[str, Any] = {"code": _code(exc), "message": _message(exc, fields)}
    if fields:
        body["fields"] = fields
    if (line := getattr(exc, "line", None)) is not None:
        body["line"] = line
    headers: dict[str, str] = {}
    if auth_header := getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = auth_header
    if (wait := getattr(exc, "wait", None)) is not None:
        retry_after = max(1, math.ceil(wait))
        body["retry_after"] = retry_after
        headers["Retry-After"] = str(retry_after)
    return Response({"error": body}, status=exc.status_code, headers=headers)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER. Anything that is not an API error is left to Django (a 500): bad input
    must never get there, so such a 500 is a bug to fix, not to paper over here."""
    api_exc = _as_api_exception(exc)
    if api_exc is None:
        return None
    set_rollback()
    return error_response(api_exc)


ERROR_DESCRIPTIONS = {
    400: "Invalid input; `fields` names each field at fault (and `line` a line of an upload).",
    401: "No or invalid credentials.",
    403: "Not allowed.",
    404: "No such object, or not yours.",
    409: "The object is not in a state that allows this operation.",
    413: "Too large: too many bytes or too many blocks.",
    415: "Unsupported Content-Type.",
    422: "Well formed, but it contradicts an earlier request (`code` says how).",
    429: "Throttled; retry after `retry_after` seconds.",
}


def error_responses(*codes: int) -> dict[int, Any]:
    """Schema entries for the error responses of an operation, all in the one error shape."""
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code]) for code in codes}


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: under /api/ an unknown URL answers in the shared error shape, elsewhere as usual."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": "not_found", "message": "Not found."}}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a bug, never bad input; the API still answers in its own shape."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": "server_error", "message": "Internal server error."}},
                            status=500)
    return defaults.server_error(request)
