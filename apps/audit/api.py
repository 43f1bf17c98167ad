"""`/api/v1/audit/`: the audit trail, for staff with the model's view permission (or superusers): every
row; and for a team's admins: their team's rows (`team_id`; apps/audit/selectors.py). Anyone else
gets a 403. A list (paginated, filtered) and a CSV export of the same filter. Read-only: there is no write
endpoint, and PostgreSQL refuses updates and deletes anyway."""

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.models import AuditRecord
from apps.audit.selectors import audit_records, audit_records_visible_to
from config.api.errors import error_responses, validated_input
from config.api.pagination import PagePagination

CSV_COLUMNS = [
    "id",
    "at",
    "actor_id",
    "actor_name",
    "channel",
    "remote_address",
    "action",
    "object_type",
    "object_id",
    "team_id",
    "changes",
]


class MayReadAudit(BasePermission):
    message = (
        "Reading the audit trail needs the audit.view_auditrecord permission, or being an admin of a "
        "team (to read that team's rows)."
    )

    def has_permission(self, request: Request, view: Any) -> bool:
        return audit_records_visible_to(request.user) is not None


class AuditFilterSerializer(serializers.Serializer):
    object_type = serializers.CharField(required=False, max_length=32)
    object_id = serializers.CharField(required=False, max_length=64)
    actor_id = serializers.IntegerField(required=False, min_value=1)
    action = serializers.CharField(required=False, max_length=64)
    team_id = serializers.IntegerField(required=False, min_value=1)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class AuditRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditRecord
        fields = CSV_COLUMNS


@extend_schema(tags=["audit"])
class AuditListApi(GenericAPIView):
    permission_classes = [MayReadAudit]
    serializer_class = AuditRecordSerializer
    pagination_class = PagePagination

    @extend_schema(
        operation_id="audit_list",
        parameters=[AuditFilterSerializer],
        responses={200: AuditRecordSerializer(many=True), **error_responses(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        rows = audit_records(
            rows=audit_records_visible_to(request.user),
            **validated_input(AuditFilterSerializer, request.query_params.dict()),
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(AuditRecordSerializer(page, many=True).data)


def csv_chunks(rows: Any) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for n, row in enumerate(rows.values_list(*CSV_COLUMNS).iterator(chunk_size=2000), start=1):
        values = list(row)
        values[1] = values[1].isoformat()
        values[-1] = json.dumps(values[-1], sort_keys=True)
        writer.writerow(values)
        if n % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@extend_schema(tags=["audit"])
class AuditExportApi(APIView):
    permission_classes = [MayReadAudit]

    @extend_schema(
        operation_id="audit_export",
        parameters=[AuditFilterSerializer],
        responses={(200, "text/csv"): str, **error_responses(400, 401, 403)},
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        rows = audit_records(
            rows=audit_records_visible_to(request.user),
            **validated_input(AuditFilterSerializer, request.query_params.dict()),
        )
        response = StreamingHttpResponse(csv_chunks(rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit.csv"'
        return response
