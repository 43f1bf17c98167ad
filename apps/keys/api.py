"""`/api/v1/keys/`: a small viewset over the key services. A user sees only their own keys (another
user's key is a 404, like a missing one); staff see all."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from apps.keys.models import ProviderKey
from apps.keys.selectors import keys_for_user
from apps.keys.serializers import KeyCreateInputSerializer, KeyOutputSerializer, KeyUpdateInputSerializer
from apps.keys.services import (
    KeyInUse,
    key_create,
    key_delete,
    key_schedule_validation,
    key_update,
)
from config.api.throttles import WRITES


class KeyConflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "key_in_use"


def _as_api_error(exc: DjangoValidationError) -> serializers.ValidationError:
    if hasattr(exc, "error_dict"):
        return serializers.ValidationError(exc.message_dict)
    return serializers.ValidationError({"detail": exc.messages})


class KeyViewSet(viewsets.ModelViewSet):
    serializer_class = KeyOutputSerializer
    # JSON only: the browsable API re-renders a failed form with the submitted values, which for
    # this endpoint would put the secret into an HTML page.
    renderer_classes = [JSONRenderer]
    # Creating, changing, validating and deleting keys count as writes (config/api/throttles.py).
    throttle_scope = WRITES
    # No PUT: an update changes only what is sent, which is PATCH.
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[ProviderKey]:
        return keys_for_user(user=self.request.user)

    @extend_schema(request=KeyCreateInputSerializer, responses={201: KeyOutputSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        data = self._input(KeyCreateInputSerializer, request)
        try:
            key = key_create(owner=request.user, **data)
        except DjangoValidationError as exc:
            raise _as_api_error(exc) from None
        return Response(KeyOutputSerializer(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=KeyUpdateInputSerializer, responses={200: KeyOutputSerializer})
    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        key = self.get_object()
        data = self._input(KeyUpdateInputSerializer, request)
        try:
            key = key_update(key=key, **data)
        except DjangoValidationError as exc:
            raise _as_api_error(exc) from None
        return Response(KeyOutputSerializer(key).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args, **kwargs) -> Response:
        key = self.get_object()
        try:
            key_delete(key=key)
        except KeyInUse as exc:
            raise KeyConflict(str(exc)) from None
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: KeyOutputSerializer})
    @action(detail=True, methods=["post"])
    def validate(self, request: Request, pk: str | None = None) -> Response:
        """Queue a validation call; the verdict appears on the key (`is_valid`, `validated_at`)."""
        key = self.get_object()
        key_schedule_validation(key=key)
        return Response(KeyOutputSerializer(key).data, status=status.HTTP_202_ACCEPTED)

    @staticmethod
    def _input(serializer_class: type[serializers.Serializer], request: Request) -> dict:
        serializer = serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)
