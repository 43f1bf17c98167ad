"""`/api/v1/spend/`: what was spent, by team, member, key, model and day, from the recorded usage
(apps/runs/reporting/spend.py), over the runs the caller may read; JSON, or CSV with ?format=csv."""

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.runs.reporting.spend import GROUPS, month_start, spend_csv, spend_rows, spend_total
from apps.runs.services.team_budget import limits_status
from apps.teams.access import teams_visible_to
from config.api.errors import error_responses, validated_input
from config.api.renderers import CSVRenderer


class SpendFilterSerializer(serializers.Serializer):
    team = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False,
                                    help_text="Only this team's runs.")
    since = serializers.DateField(required=False, help_text="From this day (UTC); default: the 1st of "
                                                            "this month.")
    until = serializers.DateField(required=False, help_text="Before this day (UTC); default: no end.")
    group_by = serializers.CharField(
        required=False, default="day",
        help_text=f"Comma-separated, any of {', '.join(GROUPS)} (default: day).")

    def validate_group_by(self, value: str) -> list[str]:
        groups = [g.strip() for g in value.split(",") if g.strip()]
        unknown = [g for g in groups if g not in GROUPS]
        if unknown or not groups:
            raise serializers.ValidationError(
                f"{', '.join(unknown) or 'nothing'}: group by any of {', '.join(GROUPS)}")
        return groups

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("since") and attrs.get("until") and attrs["until"] <= attrs["since"]:
            raise serializers.ValidationError({"until": ["must be after since"]})
        return attrs


class SpendRowSerializer(serializers.Serializer):
    team_id = serializers.IntegerField(required=False, allow_null=True)
    team_name = serializers.CharField(required=False, allow_null=True)
    member = serializers.CharField(required=False)
    key_id = serializers.IntegerField(required=False, allow_null=True)
    key_label = serializers.CharField(required=False, allow_null=True)
    model = serializers.CharField(required=False)
    day = serializers.DateField(required=False)
    calls = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_creation_input_tokens = serializers.IntegerField()
    cache_read_input_tokens = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=16, decimal_places=8)


class SpendReportSerializer(serializers.Serializer):
    since = serializers.DateField()
    until = serializers.DateField(allow_null=True)
    group_by = serializers.ListField(child=serializers.CharField())
    rows = SpendRowSerializer(many=True)
    total = SpendRowSerializer()


@extend_schema(tags=["spend"])
class SpendReportApi(APIView):
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        operation_id="spend_report",
        summary="Spend by team, member, key, model and day (UTC), from the recorded usage.",
        description="Every provider call of the runs you may read (your personal runs, your teams' runs), "
                    "summed per group. `?format=csv` (or Accept: text/csv): the rows as CSV.",
        parameters=[SpendFilterSerializer],
        responses={200: SpendReportSerializer,
                   (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV with a header row."),
                   **error_responses(400, 401)},
    )
    def get(self, request: Request) -> Response | HttpResponse:
        params = validated_input(SpendFilterSerializer, request.query_params.dict())
        since, until = params.get("since") or month_start(), params.get("until")
        rows = spend_rows(user=request.user, group_by=params["group_by"], team=params.get("team"),
                          since=since, until=until)
        if request.accepted_renderer.format == "csv":
            response = HttpResponse(spend_csv(rows, params["group_by"]), content_type="text/csv")
            response["Content-Disposition"] = f'attachment; filename="spend-{since}.csv"'
            return response
        body = {"since": since, "until": until, "group_by": params["group_by"], "rows": rows,
                "total": spend_total(rows)}
        return Response(SpendReportSerializer(body).data)


class LimitStatusSerializer(serializers.Serializer):
    team_id = serializers.IntegerField()
    team = serializers.CharField()
    member = serializers.CharField(allow_null=True, help_text="null: the team's own limit.")
    limit_usd = serializers.DecimalField(max_digits=12, decimal_places=4)
    period = serializers.CharField()
    window_days = serializers.IntegerField(allow_null=True)
    period_start = serializers.DateTimeField()
    spent_usd = serializers.DecimalField(max_digits=16, decimal_places=8)
    reserved_usd = serializers.DecimalField(max_digits=16, decimal_places=8,
                                            help_text="Held for calls in flight (their worst case).")
    left_usd = serializers.DecimalField(max_digits=16, decimal_places=8)
    alert_level = serializers.IntegerField(help_text="The last threshold announced: 0, 80 or 100 (%).")
    paused_runs = serializers.IntegerField(help_text="Runs paused by this team's limits (team_budget).")


@extend_schema(tags=["spend"])
class SpendLimitsApi(APIView):
    @extend_schema(
        operation_id="spend_limits",
        summary="Where each spend limit of your teams stands in its period: spent, in flight, left.",
        responses={200: LimitStatusSerializer(many=True), **error_responses(401)},
    )
    def get(self, request: Request) -> Response:
        rows = limits_status(teams=teams_visible_to(request.user))
        return Response(LimitStatusSerializer(rows, many=True).data)
