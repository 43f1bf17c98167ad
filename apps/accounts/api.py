"""`/api/v1/auth/`: get a token (with a username and password, or a browser session) and revoke it.

The login endpoint is the only one that takes a password (HTTP basic auth): it goes through Django's
`authenticate()`, so django-axes counts its failures and locks the client out like the admin login.
Every other endpoint takes the token (`Authorization: Token <token>`) or a session.
"""

from typing import Any

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.services import token_create, token_revoke, tokens_revoke_all
from config.api.authentication import TokenAuthentication
from config.api.errors import error_responses
from config.api.throttles import LOGIN


class PasswordAuthentication(BasicAuthentication):
    """Basic auth that hands Django's own request to `authenticate()`: django-axes marks a locked-out
    client on it, and its middleware answers that request with 429."""

    def authenticate_credentials(self, userid: str, password: str, request: Request | None = None
                                 ) -> tuple[Any, None]:
        django_request = getattr(request, "_request", request)
        user = authenticate(request=django_request, username=userid, password=password)
        if user is None or not user.is_active:
            raise AuthenticationFailed("Invalid username or password.")
        return user, None


class TokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Shown once; only a hash of it is stored.")
    expiry = serializers.DateTimeField()


@extend_schema(tags=["auth"])
class LoginApi(APIView):
    authentication_classes = [PasswordAuthentication, SessionAuthentication]
    renderer_classes = [JSONRenderer]
    throttle_scope = LOGIN

    @extend_schema(operation_id="auth_login", request=None,
                   responses={200: TokenOutputSerializer, **error_responses(400, 401, 403, 429)})
    def post(self, request: Request) -> Response:
        """A new API token for the authenticated user (HTTP basic auth, or a session)."""
        issued = token_create(user=request.user)
        return Response(TokenOutputSerializer({"token": issued.token, "expiry": issued.expiry}).data)


@extend_schema(tags=["auth"])
class LogoutApi(APIView):
    authentication_classes = [TokenAuthentication]
    renderer_classes = [JSONRenderer]

    @extend_schema(operation_id="auth_logout", request=None, responses={204: None, **error_responses(401)})
    def post(self, request: Request) -> Response:
        """Revoke the token this request was made with."""
        token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["auth"])
class LogoutAllApi(APIView):
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    renderer_classes = [JSONRenderer]

    @extend_schema(operation_id="auth_logout_all", request=None,
                   responses={204: None, **error_responses(401, 403)})
    def post(self, request: Request) -> Response:
        """Revoke every token of the user (a leaked token, a lost laptop)."""
        tokens_revoke_all(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
