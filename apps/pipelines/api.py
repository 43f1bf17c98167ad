"""`/api/v1/pipelines/`: thin views over the pipeline services and selectors. A pipeline is its
owner's (another user's is a 404, like a missing one); staff see all. Each step is a run: its blocks,
results, events and failures are at `/api/v1/runs/<run_id>/...`."""

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.services import actor_from_request, record
from apps.keys.selectors import key_get_for_user
from apps.pipelines.models import Pipeline
from apps.pipelines.selectors import (
    item_paths,
    pipeline_get_visible,
    pipeline_items,
    pipeline_rollup,
    pipelines_list,
)
from apps.pipelines.serializers import (
    PipelineCreateInputSerializer,
    PipelineDetailSerializer,
    PipelineItemFilterSerializer,
    PipelineItemSerializer,
    PipelineSerializer,
)
from apps.pipelines.services.creation import PipelineSpecError, pipeline_create
from apps.runs.services.submission import block_from_object
from config.api.errors import InputError, PayloadTooLarge, error_responses, validated_input
from config.api.pagination import PagePagination
from config.api.parsers import JSONParser
from config.api.throttles import UPLOADS

PIPELINE_ID = OpenApiParameter("pipeline_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


def visible_pipeline(request: Request, pipeline_id: str) -> Pipeline:
    pipeline = pipeline_get_visible(user=request.user, pipeline_id=pipeline_id)
    if pipeline is None:
        raise NotFound("No such pipeline.")
    return pipeline


def pipeline_response(pipeline: Pipeline, *, status_code: int = status.HTTP_200_OK) -> Response:
    data: dict[str, Any] = {
        "id": pipeline.pk, "name": pipeline.name, "status": pipeline.status,
        "total_items": pipeline.total_items, "created_at": pipeline.created_at,
        "ended_at": pipeline.ended_at, **pipeline_rollup(pipeline),
    }
    return Response(PipelineDetailSerializer(data).data, status=status_code)


@extend_schema(tags=["pipelines"])
class PipelineListCreateApi(GenericAPIView):
    parser_classes = [JSONParser]
    throttle_scope = UPLOADS
    pagination_class = PagePagination
    serializer_class = PipelineSerializer

    @extend_schema(operation_id="pipelines_list",
                   responses={200: PipelineSerializer(many=True), **error_responses(401, 404)})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(pipelines_list(user=request.user))
        return self.get_paginated_response(PipelineSerializer(page, many=True).data)

    @extend_schema(
        operation_id="pipelines_create",
        summary="Create a pipeline: its steps (each a run) and its items, which start in the first step.",
        description="A bad step or item is a 400 naming it (`steps.1.input`, `items.3.uid`); nothing is "
                    "created.",
        request=PipelineCreateInputSerializer,
        responses={201: PipelineDetailSerializer, **error_responses(400, 401, 409, 413, 415, 429)},
    )
    def post(self, request: Request) -> Response:
        self._check_size(request)
        data = validated_input(PipelineCreateInputSerializer, request.data)
        key = key_get_for_user(user=request.user, key_id=data["key"])
        if key is None:
            raise InputError({"key": ["unknown key"]})
        items = [block_from_object({k: v for k, v in item.items() if v is not None}, line=n)
                 for n, item in enumerate(data["items"], start=1)]
        try:
            pipeline = pipeline_create(owner=request.user, key=key, name=data["name"], steps=data["steps"],
                                       items=items)
        except PipelineSpecError as exc:
            raise InputError({exc.field or "non_field_errors": [exc.message]}) from None
        record(actor=actor_from_request(request), action="pipeline.create", object_type="pipeline",
               object_id=pipeline.pk, after={"name": pipeline.name, "key_id": key.pk, "items": len(items),
                                             "steps": [step.get("name") for step in data["steps"]]})
        return pipeline_response(pipeline, status_code=status.HTTP_201_CREATED)

    @staticmethod
    def _check_size(request: Request) -> None:
        """The runs API's limits: the body (refused before it is read, by its announced length) and
        the number of items."""
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.MAX_JSON_BODY_BYTES:
            raise PayloadTooLarge(f"the request body is larger than {settings.MAX_JSON_BODY_BYTES:,} bytes")
        raw = request.data
        if isinstance(raw, dict) and isinstance(raw.get("items"), list) and (
            len(raw["items"]) > settings.MAX_UPLOAD_BLOCKS
        ):
            raise PayloadTooLarge(f"more than {settings.MAX_UPLOAD_BLOCKS:,} items")


@extend_schema(tags=["pipelines"], parameters=[PIPELINE_ID])
class PipelineDetailApi(APIView):
    @extend_schema(operation_id="pipelines_retrieve",
                   responses={200: PipelineDetailSerializer, **error_responses(401, 404)})
    def get(self, request: Request, pipeline_id: str) -> Response:
        return pipeline_response(visible_pipeline(request, pipeline_id))


@extend_schema(tags=["pipelines"], parameters=[PIPELINE_ID])
class PipelineItemListApi(GenericAPIView):
    pagination_class = PagePagination
    serializer_class = PipelineItemSerializer

    @extend_schema(operation_id="pipelines_items_list", parameters=[PipelineItemFilterSerializer],
                   description="Each item with its path: the steps it reached and its block's status in "
                               "each (`filtered` where a step's filter did not take it).",
                   responses={200: PipelineItemSerializer(many=True), **error_responses(400, 401, 404)})
    def get(self, request: Request, pipeline_id: str) -> Response:
        pipeline = visible_pipeline(request, pipeline_id)
        status_filter = validated_input(PipelineItemFilterSerializer, request.query_params).get("status")
        page = self.paginate_queryset(pipeline_items(pipeline, status=status_filter))
        return self.get_paginated_response(PipelineItemSerializer(item_paths(pipeline, page), many=True).data)
