"""`/api/v1/failures/`: the dead-letter table, one thin view per operation. A failure belongs to its
run's owner (another user's failure is a 404, like a missing one); staff see all. Replay and resolve
go through the same services as the admin and the beat task; their state errors are mapped once, in
config/api/errors.py."""

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.failures.models import PipelineFailure
from apps.failures.selectors import failures_list, failures_visible_to
from apps.failures.serializers import (
    MAX_BULK_IDS,
    MAX_ID,
    BulkReplayOutputSerializer,
    FailureBulkReplayInputSerializer,
    FailureListFilterSerializer,
    FailureOutputSerializer,
    FailureResolveInputSerializer,
)
from apps.failures.services import failure_resolve
from apps.runs.services.replay import failure_replay_now, failures_replay_selected
from config.api.errors import error_responses, validated_input
from config.api.pagination import PagePagination
from config.api.throttles import WRITES


def visible_failure(request: Request, failure_id: str) -> PipelineFailure:
    """Any id that is not a visible row's is a 404 in the API's error shape, never a database error."""
    row = None
    if failure_id.isdigit() and 0 < int(failure_id) <= MAX_ID:
        row = failures_visible_to(user=request.user).filter(pk=int(failure_id)).first()
    if row is None:
        raise NotFound("No such failure.")
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
class FailureReplayApi(APIView):
    throttle_scope = WRITES

    @extend_schema(operation_id="failures_replay", request=None,
                   responses={200: FailureOutputSerializer, **error_responses(401, 404, 409, 429)})
    def post(self, request: Request, failure_id: str) -> Response:
        """Put the failed block back to work now, due or not, parked or not. If the block had already
        succeeded, the failure is resolved instead (see `state`)."""
        row = visible_failure(request, failure_id)
        failure_replay_now(failure_id=row.pk)
        return failure_response(request, row.pk)


@extend_schema(tags=["failures"])
class FailureResolveApi(APIView):
    throttle_scope = WRITES

    @extend_schema(operation_id="failures_resolve", request=FailureResolveInputSerializer,
                   responses={200: FailureOutputSerializer, **error_responses(400, 401, 404, 409, 429)})
    def post(self, request: Request, failure_id: str) -> Response:
        """Close the failure with a note; it is never replayed again (the block stays failed)."""
        row = visible_failure(request, failure_id)
        data = validated_input(FailureResolveInputSerializer, request.data)
        failure_resolve(failure_id=row.pk, note=data["note"])
        return failure_response(request, row.pk)


@extend_schema(tags=["failures"])
class FailureBulkReplayApi(APIView):
    throttle_scope = WRITES

    @extend_schema(operation_id="failures_replay_bulk", request=FailureBulkReplayInputSerializer,
                   responses={200: BulkReplayOutputSerializer, **error_responses(400, 401, 429)})
    def post(self, request: Request) -> Response:
        """Replay failures by `ids`, or every unresolved failure matching the filters (at most 1000 per
        call). Ids you cannot see are refused as not found."""
        data = validated_input(FailureBulkReplayInputSerializer, request.data)
        rows = failures_visible_to(user=request.user)
        if "ids" in data:
            wanted = list(dict.fromkeys(data["ids"]))
            visible = set(rows.filter(pk__in=wanted).values_list("pk", flat=True))
            ids = [pk for pk in wanted if pk in visible]
            hidden = [pk for pk in wanted if pk not in visible]
        else:
            matching = failures_list(user=request.user, resolved=False, **data)
            ids = list(matching.values_list("pk", flat=True)[:MAX_BULK_IDS])
            hidden = []
        report = failures_replay_selected(failure_ids=ids)
        refused = [{"id": pk, "reason": "not found"} for pk in hidden]
        refused += [{"id": pk, "reason": reason} for pk, reason in report.refused.items()]
        body = {"replayed": report.replayed, "resolved": report.resolved, "refused": refused}
        return Response(BulkReplayOutputSerializer(body).data)
