"""`/api/v1/failures/{id}/replay/` and `/api/v1/failures/replay/`: replaying dead-letter rows puts
their blocks back to work in their runs, so these views live with the run engine that does it
(apps/runs/services/replay.py, also behind the admin's replay and the beat task); the rest of
`/api/v1/failures/` is apps/failures/api.py. Same ownership rules: another user's failure is a 404."""

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.services import actor_from_request
from apps.failures.api import failure_response, visible_failure
from apps.failures.auditing import failure_audited, failures_bulk_recorded
from apps.failures.selectors import failures_list, failures_visible_to
from apps.failures.serializers import (
    MAX_BULK_IDS,
    BulkReplayOutputSerializer,
    FailureBulkReplayInputSerializer,
    FailureOutputSerializer,
)
from apps.runs.services.replay import failure_replay_now, failures_replay_selected
from config.api.errors import error_responses, validated_input
from config.api.throttles import WRITES


@extend_schema(tags=["failures"])
class FailureReplayApi(APIView):
    throttle_scope = WRITES

    @extend_schema(operation_id="failures_replay", request=None,
                   responses={200: FailureOutputSerializer, **error_responses(401, 403, 404, 409, 429)})
    def post(self, request: Request, failure_id: str) -> Response:
        """Put the failed block back to work now, due or not, parked or not. If the block had already
        succeeded, the failure is resolved instead (see `state`)."""
        row = visible_failure(request, failure_id, write=True)
        failure_audited(actor_from_request(request), "replay", row.pk,
                        lambda: failure_replay_now(failure_id=row.pk))
        return failure_response(request, row.pk)


@extend_schema(tags=["failures"])
class FailureBulkReplayApi(APIView):
    throttle_scope = WRITES

    @extend_schema(operation_id="failures_replay_bulk", request=FailureBulkReplayInputSerializer,
                   responses={200: BulkReplayOutputSerializer, **error_responses(400, 401, 429)})
    def post(self, request: Request) -> Response:
        """Replay failures by `ids`, or every unresolved failure matching the filters (at most 1000 per
        call). Ids you cannot see are refused as not found, those you may read but not change as not
        allowed; filters select only among the failures you may change."""
        data = validated_input(FailureBulkReplayInputSerializer, request.data)
        rows = failures_visible_to(user=request.user)
        changeable = failures_visible_to(user=request.user, write=True)
        readonly: list[int] = []
        if "ids" in data:
            wanted = list(dict.fromkeys(data["ids"]))
            visible = set(rows.filter(pk__in=wanted).values_list("pk", flat=True))
            allowed = set(changeable.filter(pk__in=wanted).values_list("pk", flat=True))
            ids = [pk for pk in wanted if pk in allowed]
            hidden = [pk for pk in wanted if pk not in visible]
            readonly = [pk for pk in wanted if pk in visible and pk not in allowed]
        else:
            matching = failures_list(user=request.user, resolved=False, **data).filter(
                pk__in=changeable.values("pk"))
            ids = list(matching.values_list("pk", flat=True)[:MAX_BULK_IDS])
            hidden = []
        with transaction.atomic():
            report = failures_replay_selected(failure_ids=ids)
            failures_bulk_recorded(actor_from_request(request), "replay",
                                   done=[pk for pk in ids if pk not in report.refused],
                                   refused=report.refused)
        refused = [{"id": pk, "reason": "not found"} for pk in hidden]
        refused += [{"id": pk, "reason": "not allowed: you may read it but not replay it"} for pk in readonly]
        refused += [{"id": pk, "reason": reason} for pk, reason in report.refused.items()]
        body = {"replayed": report.replayed, "resolved": report.resolved, "refused": refused}
        return Response(BulkReplayOutputSerializer(body).data)
