"""`/api/v1/failures/`: the dead-letter table, one thin view per operation. A failure is its run's:
one the caller may not read is a 404, like a missing one; one they may read but not change is a 403
for replay and resolve (apps/teams/access.py). Resolve goes through
the same service as the admin; its state errors are mapped once, in config/api/errors.py. Replay puts
the block back to work in its run, a run operation: its endpoints are apps/runs/replay_api.py."""

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.services import actor_from_request
from apps.failures.auditing import failure_audited
from apps.failures.models import PipelineFailure
from apps.failures.selectors import failures_list, failures_visible_to
from apps.failures.serializers import (
    MAX_ID,
    FailureListFilterSerializer,
    FailureOutputSerializer,
    FailureResolveInputSerializer,
)
from apps.failures.services import failure_resolve
from apps.teams.access import check_write
from config.api.errors import error_responses, validated_input
from config.api.pagination import PagePagination
from config.api.throttles import WRITES


def visible_failure(request: Request, failure_id: str, *, write: bool = False) -> PipelineFailure:
    """Any id that is not a visible row's is a 404 in the API's error shape, never a database error;
    with `write`, a row the caller may read but not change is a 403 saying why."""
    row = None
    if failure_id.isdigit() and 0 < int(failure_id) <= MAX_ID:
        row = failures_visible_to(user=request.user).filter(pk=int(failure_id)).first()
    if row is None:
        raise NotFound("No such failure.")
    if write:
        check_write(request.user, row)
    return row


def failure_response(request: Request, failure_id: int) -> Response:
    return Response(FailureOutputSerializer(visible_failure(request, str(failure_id))).data)


@extend_schema(tags=["failures"])
class FailureListApi(GenericAPIView):
    serializer_class = FailureOutputSerializer
    pagination_class = PagePagination

    @extend_schema(operation_id="failures_list", parameters=[FailureListFilterSerializer],
                   responses={200: FailureOutputSerializer(many=True), **error_responses(400, 401)})
    def get(self, request: Request) -> Response:
        # A plain dict: DRF reads a missing boolean in a QueryDict as False, not as "no filter".
        filters = validated_input(FailureListFilterSerializer, request.query_params.dict())
        page = self.paginate_queryset(failures_list(user=request.user, **filters))
        return self.get_paginated_response(FailureOutputSerializer(page, many=True).data)


@extend_schema(tags=["failures"])
class FailureDetailApi(APIView):
    @extend_schema(operation_id="failures_retrieve",
                   responses={200: FailureOutputSerializer, **error_responses(401, 404)})
    def get(self, request: Request, failure_id: str) -> Response:
        return Response(FailureOutputSerializer(visible_failure(request, failure_id)).data)


@extend_schema(tags=["failures"])
class FailureResolveApi(APIView):
    throttle_scope = WRITES

    @extend_schema(operation_id="failures_resolve", request=FailureResolveInputSerializer,
                   responses={200: FailureOutputSerializer, **error_responses(400, 401, 403, 404, 409, 429)})
    def post(self, request: Request, failure_id: str) -> Response:
        """Close the failure with a note; it is never replayed again (the block stays failed)."""
        row = visible_failure(request, failure_id, write=True)
        data = validated_input(FailureResolveInputSerializer, request.data)
        failure_audited(actor_from_request(request), "resolve", row.pk,
                        lambda: failure_resolve(failure_id=row.pk, note=data["note"]))
        return failure_response(request, row.pk)
