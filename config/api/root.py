"""GET /api/v1/: the API's resources, each by its URL, as DRF's browsable API and JSON list them.

Open to anyone: it only names what exists (every resource asks for a token or a session itself), so a
person or a client finding the API learns where to go and how to authenticate."""

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

# name in the listing -> URL name
RESOURCES = {
    "runs": "run-list",
    "runs_estimate": "run-estimate",
    "keys": "key-list",
    "failures": "failure-list",
    "webhook_secret": "webhook-secret",
    "webhook_deliveries": "webhook-delivery-list",
    "auth_login": "auth-login",
    "auth_logout": "auth-logout",
    "auth_logout_all": "auth-logout-all",
    "schema": "schema",
    "docs": "api-docs",
}
AUTHENTICATION = ("Send `Authorization: Token <token>` (or use a session). Get a token: POST auth_login "
                  "with basic auth, or `manage.py create_token --user U`.")


class ApiRootView(APIView):
    """The Conveyor API: push large batches of text through Anthropic's API reliably. Each resource
    below by its URL; the docs page describes every operation."""

    permission_classes = [AllowAny]
    # The browsable API's title.
    name = "Conveyor API"
    # Nothing to throttle: no write, no token checked.
    throttle_classes: list[Any] = []

    @extend_schema(operation_id="api_root", tags=["api"], responses={200: inline_serializer(
        "ApiRoot", fields={"authentication": serializers.CharField(),
                           **{name: serializers.URLField() for name in RESOURCES}})})
    def get(self, request: Request) -> Response:
        urls = {name: reverse(url_name, request=request) for name, url_name in RESOURCES.items()}
        return Response({"authentication": AUTHENTICATION, **urls})
