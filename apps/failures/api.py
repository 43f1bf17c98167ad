"""`/api/v1/failures/`: the dead-letter table. A failure belongs to its run's owner (another user's
failure is a 404, like a missing one); staff see all. Replay and resolve go through the same services
as the admin and the beat task."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

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
from apps.failures.services import FailureStateError, failure_resolve
from apps.runs.services.replay import failure_replay_now, failures_replay_selected
from config.api.errors import Conflict, error_responses
from config.api.pagination import PagePagination
from config.api.throttles import WRITES


def _input(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@extend_schema(tags=["failures"])
@extend_schema_view(
    list=extend_schema(
        operation_id="failures_list", parameters=[FailureListFilterSerializer],
        responses={200: FailureOutputSerializer(many=True), **error_responses(400, 401)},
    ),
    retrieve=extend_schema(operation_id="failures_retrieve",
                           responses={200: FailureOutputSerializer, **error_responses(401, 404)}),
)
class FailureViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = FailureOutputSerializer
    pagination_class = PagePagination
    throttle_scope = WRITES

    def get_queryset(self) -> QuerySet[PipelineFailure]:
        if self.action == "list":
            # A plain dict: DRF reads a missing boolean in a QueryDict as False, not as "no filter".
            filters = _input(FailureListFilterSerializer, self.request.query_params.dict())
            return failures_list(user=self.request.user, **filters)
        return failures_visible_to(user=self.request.user)

    def get_object(self) -> PipelineFailure:
        # Any id that is not a row's is a 404 in the API's error shape, never a database error.
        pk = self.kwargs.get("pk", "")
        if not (pk.isdigit() and 0 < int(pk) <= MAX_ID):
            raise NotFound()
        row = self.get_queryset().filter(pk=int(pk)).first()
        if row is None:
            raise NotFound()
        return row

    @extend_schema(operation_id="failures_replay_selected", request=None,
                   responses={200: FailureOutputSerializer, **error_responses(401, 404, 409, 429)})
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str | None = None) -> Response:
        """Put the failed block back to work now, due or not, parked or not. If the block had already
        succeeded, the failure is resolved instead (see `state`)."""
        row = self.get_object()
        try:
            failure_replay_now(failure_id=row.pk)
        except FailureStateError as exc:
            raise Conflict(str(exc)) from None
        return Response(FailureOutputSerializer(self.get_object()).data)

    @extend_schema(operation_id="failures_resolve", request=FailureResolveInputSerializer,
                   responses={200: FailureOutputSerializer, **error_responses(400, 401, 404, 409, 429)})
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        """Close the failure with a note; it is never replayed again (the block stays failed)."""
        row = self.get_object()
        data = _input(FailureResolveInputSerializer, request.data)
        try:
            failure_resolve(failure_id=row.pk, note=data["note"])
        except FailureStateError as exc:
            raise Conflict(str(exc)) from None
        return Response(FailureOutputSerializer(self.get_object()).data)

    @extend_schema(request=FailureBulkReplayInputSerializer,
                   responses={200: BulkReplayOutputSerializer, **error_responses(400, 401, 429)},
                   operation_id="failures_replay_bulk")
    @action(detail=False, methods=["post"], url_path="replay", url_name="replay-bulk")
    def replay_bulk(self, request: Request) -> Response:
        """Replay failures by `ids`, or every unresolved failure matching the filters (at most 1000 per
        call). Ids you cannot see are refused as not found."""
        data = _input(FailureBulkReplayInputSerializer, request.data)
        rows = failures_visible_to(user=request.user)
        if "ids" in data:
            visible = set(rows.filter(pk__in=data["ids"]).values_list("pk", flat=True))
            ids = [pk for pk in dict.fromkeys(data["ids"]) if pk in visible]
            hidden = [pk for pk in dict.fromkeys(data["ids"]) if pk not in visible]
        else:
            matching = failures_list(user=request.user, resolved=False, **data)
            ids = list(matching.values_list("pk", flat=True)[:MAX_BULK_IDS])
            hidden = []
        report = failures_replay_selected(failure_ids=ids)
        refused = [{"id": pk, "reason": "not found"} for pk in hidden]
        refused += [{"id": pk, "reason": reason} for pk, reason in report.refused.items()]
        body = {"replayed": report.replayed, "resolved": report.resolved, "refused": refused}
        return Response(BulkReplayOutputSerializer(body).data, status=status.HTTP_200_OK)
