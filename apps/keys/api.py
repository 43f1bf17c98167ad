"""`/api/v1/keys/`: one thin view per operation over the key services. Who sees and changes a key
is apps/teams/access.py's to say: a key the caller may not see is a 404, like a missing one; one they
see but may not change (a team's member or viewer, staff without `keys.change_providerkey` /
`keys.delete_providerkey`) is a 403 that says why.

JSON only: the browsable API re-renders a failed form with the submitted values, which for these
endpoints would put the secret into an HTML page. Every write is throttled (config/api/throttles.py);
service errors (bad input, a key in use) are mapped once, in config/api/errors.py.
"""

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.services import actor_from_request, record
from apps.keys.auditing import key_fields
from apps.keys.models import ProviderKey
from apps.keys.selectors import key_get_for_user, key_user_may_change, keys_for_user
from apps.keys.serializers import KeyCreateInputSerializer, KeyOutputSerializer, KeyUpdateInputSerializer
from apps.keys.services import (
    LIMIT_FIELDS,
    key_create,
    key_delete,
    key_schedule_validation,
    key_set_limits,
    key_update,
)
from apps.teams.access import teams_visible_to, write_refusal
from config.api.errors import InputError, error_responses, validated_input
from config.api.throttles import WRITES


class KeyApi(APIView):
    renderer_classes = [JSONRenderer]
    throttle_scope = WRITES


def visible_key(request: Request, key_id: str) -> ProviderKey:
    """The key if the user may see it; any other id (missing, another user's, not a number) is a
    404 alike."""
    valid = key_id.isdigit() and 0 < int(key_id) < 2**63
    key = key_get_for_user(user=request.user, key_id=int(key_id)) if valid else None
    if key is None:
        raise NotFound("No such key.")
    return key


def changeable_key(request: Request, key_id: str, *, action: str = "change") -> ProviderKey:
    """The key if the user may change it (or delete it); staff may read another user's key but
    change it only with the model permission: a 403, since they can see it."""
    key = visible_key(request, key_id)
    if not key_user_may_change(user=request.user, key=key, action=action):
        raise PermissionDenied(write_refusal(request.user, key))
    return key


@extend_schema(tags=["keys"])
class KeyListCreateApi(KeyApi):
    @extend_schema(operation_id="keys_list",
                   responses={200: KeyOutputSerializer(many=True), **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response(KeyOutputSerializer(keys_for_user(user=request.user), many=True).data)

    @extend_schema(operation_id="keys_create", request=KeyCreateInputSerializer,
                   responses={201: KeyOutputSerializer, **error_responses(400, 401, 403, 429)})
    def post(self, request: Request) -> Response:
        data = validated_input(KeyCreateInputSerializer, request.data)
        team_id = data.pop("team", None)
        team = teams_visible_to(request.user).filter(pk=team_id).first() if team_id else None
        if team_id and team is None:
            raise InputError({"team": ["unknown team: you are not a member of it"]})
        with transaction.atomic():
            key = key_create(owner=request.user, team=team, **data)
            record(actor=actor_from_request(request), action="key.create", object_type="key",
                   object_id=key.pk, after=key_fields(key), team_id=team.pk if team else None)
        return Response(KeyOutputSerializer(key).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["keys"])
class KeyDetailApi(KeyApi):
    @extend_schema(operation_id="keys_retrieve",
                   responses={200: KeyOutputSerializer, **error_responses(401, 404)})
    def get(self, request: Request, key_id: str) -> Response:
        return Response(KeyOutputSerializer(visible_key(request, key_id)).data)

    @extend_schema(operation_id="keys_partial_update", request=KeyUpdateInputSerializer,
                   responses={200: KeyOutputSerializer, **error_responses(400, 401, 403, 404, 429)})
    def patch(self, request: Request, key_id: str) -> Response:
        key = changeable_key(request, key_id)
        data = validated_input(KeyUpdateInputSerializer, request.data)
        limits = {name: data.pop(name) for name in ("tier", *LIMIT_FIELDS) if name in data}
        before = key_fields(key)
        with transaction.atomic():
            key = key_update(key=key, **data)
            if limits:
                key = key_set_limits(key=key, **limits)
            action = "key.rotate" if "secret" in data else "key.update"
            record(actor=actor_from_request(request), action=action, object_type="key", object_id=key.pk,
                   before=before, after=key_fields(key), team_id=key.team_id)
        return Response(KeyOutputSerializer(key).data)

    @extend_schema(operation_id="keys_destroy",
                   responses={204: None, **error_responses(401, 403, 404, 409, 429)})
    def delete(self, request: Request, key_id: str) -> Response:
        key = changeable_key(request, key_id, action="delete")
        key_id_deleted, before, team_id = key.pk, key_fields(key), key.team_id
        with transaction.atomic():
            key_delete(key=key)
            record(actor=actor_from_request(request), action="key.delete", object_type="key",
                   object_id=key_id_deleted, before=before, team_id=team_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["keys"])
class KeyValidateApi(KeyApi):
    @extend_schema(operation_id="keys_validate", request=None,
                   responses={202: KeyOutputSerializer, **error_responses(401, 403, 404, 429)})
    def post(self, request: Request, key_id: str) -> Response:
        """Queue a validation call; the verdict appears on the key (`is_valid`, `validated_at`)."""
        key = changeable_key(request, key_id)
        key_schedule_validation(key=key)
        return Response(KeyOutputSerializer(key).data, status=status.HTTP_202_ACCEPTED)
