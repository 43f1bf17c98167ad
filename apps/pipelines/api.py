"""`/api/v1/pipelines/`: thin views over the pipeline services and selectors. Who may see a
pipeline is apps/teams/access.py's to say (anything else is a 404, like a missing one); a team's
pipeline is created by its admins and members, with the team's key. Each step is a run: its blocks,
results, events and failures are at `/api/v1/runs/<run_id>/...`."""

from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.services import actor_from_request, record
from apps.pipelines.models import Pipeline, PipelineStep
from apps.pipelines.results import CONTENT_TYPES, FORMATS, joined_export
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
    PipelineUploadInputSerializer,
)
from apps.pipelines.services.control import (
    pipeline_cancel,
    pipeline_pause,
    pipeline_resume,
    pipeline_step_act,
)
from apps.pipelines.services.creation import PipelineSpecError, pipeline_create
from apps.pipelines.services.reseed import pipeline_reseed_step
from apps.pipelines.specs import spec_load, spec_steps
from apps.runs.api import submission_key, submitting_team
from apps.runs.serializers.inputs import ReseedInputSerializer
from apps.runs.services.submission import SubmissionError, block_from_object, parse_jsonl
from apps.runs.uploads import CountedBlocks, LineReader, TooManyBlocks
from config.api.errors import InputError, PayloadTooLarge, error_responses, validated_input
from config.api.pagination import PagePagination
from config.api.parsers import JSONParser
from config.api.renderers import CSVRenderer, NDJSONRenderer
from config.api.throttles import UPLOADS, WRITES

PIPELINE_ID = OpenApiParameter("pipeline_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


def visible_pipeline(request: Request, pipeline_id: str) -> Pipeline:
    pipeline = pipeline_get_visible(user=request.user, pipeline_id=pipeline_id)
    if pipeline is None:
        raise NotFound("No such pipeline.")
    return pipeline


def pipeline_response(pipeline: Pipeline, *, status_code: int = status.HTTP_200_OK,
                      still_paused: dict[str, str] | None = None) -> Response:
    data: dict[str, Any] = {
        "still_paused": still_paused or {},
        "id": pipeline.pk, "name": pipeline.name, "status": pipeline.status,
        "total_items": pipeline.total_items, "created_at": pipeline.created_at,
        "ended_at": pipeline.ended_at, **pipeline_rollup(pipeline),
    }
    return Response(PipelineDetailSerializer(data).data, status=status_code)


@extend_schema(tags=["pipelines"])
class PipelineListCreateApi(GenericAPIView):
    parser_classes = [JSONParser, MultiPartParser]
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
        description="JSON: key, name, steps and items inline. Multipart: `spec`, a YAML (or JSON) file "
                    "of name, key and steps (docs/pipelines.md), and `items`, a JSONL file of one item "
                    "per line; `key` as a form field overrides the spec's. A bad step or item is a 400 "
                    "naming it (`steps.1.input`, `items.3.uid`); nothing is created.",
        request={"application/json": PipelineCreateInputSerializer,
                 "multipart/form-data": PipelineUploadInputSerializer},
        responses={201: PipelineDetailSerializer, **error_responses(400, 401, 409, 413, 415, 429)},
    )
    def post(self, request: Request) -> Response:
        upload = request.content_type.split(";")[0].strip().lower() == "multipart/form-data"
        try:
            if upload:
                data, items = self._upload(request)
            else:
                self._check_size(request)
                data = validated_input(PipelineCreateInputSerializer, request.data)
                items = [block_from_object({k: v for k, v in item.items() if v is not None}, line=n)
                         for n, item in enumerate(data["items"], start=1)]
            team = submitting_team(request, data.pop("team", None))
            key = submission_key(request, data, team)
            pipeline = pipeline_create(owner=request.user, team=team, key=key, name=data["name"],
                                       steps=data["steps"],
                                       items=CountedBlocks(items, limit=settings.MAX_UPLOAD_BLOCKS))
        except TooManyBlocks:
            raise PayloadTooLarge(f"more than {settings.MAX_UPLOAD_BLOCKS:,} items") from None
        except SubmissionError as exc:
            where = f"items.{exc.line - 1}" + (f".{exc.field}" if exc.field else "") if exc.line else "items"
            raise InputError({where: [exc.message]}) from None
        except PipelineSpecError as exc:
            raise InputError({exc.field or "non_field_errors": [exc.message]}) from None
        record(actor=actor_from_request(request), action="pipeline.create", object_type="pipeline",
               object_id=pipeline.pk, team_id=team.pk if team else None,
               after={"name": pipeline.name, "key_id": key.pk, "items": pipeline.total_items,
                      "steps": [step.get("name") for step in data["steps"]]})
        return pipeline_response(pipeline, status_code=status.HTTP_201_CREATED)

    @staticmethod
    def _upload(request: Request) -> tuple[dict[str, Any], Any]:
        """A multipart create: the spec as a YAML (or JSON) file, the items as a JSONL file, read
        line by line; the key as a form field or the spec's `key` (an id)."""
        form = validated_input(PipelineUploadInputSerializer, request.data)
        if form["items"].size > settings.MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(f"the items file is larger than {settings.MAX_UPLOAD_BYTES:,} bytes")
        document = spec_load(form["spec"].read())
        key = form.get("key") or document.get("key")
        if not isinstance(key, int) or isinstance(key, bool) or not 1 <= key < 2**63:
            raise InputError({"key": ["give the id of one of your keys, as a form field or the spec's key"]})
        team = document.get("team")
        if team is not None and (not isinstance(team, int) or isinstance(team, bool)):
            raise InputError({"team": ["give the id of one of your teams as the spec's team"]})
        data = {"key": key, "team": team, "name": str(document.get("name") or "")[:200],
                "steps": spec_steps(document)}
        return data, parse_jsonl(LineReader(form["items"]))

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


STEP_NAME = OpenApiParameter("step", OpenApiTypes.STR, OpenApiParameter.PATH, description="The step's name.")


@extend_schema(tags=["pipelines"], parameters=[PIPELINE_ID], request=None)
class PipelineCancelApi(APIView):
    throttle_scope = WRITES

    @extend_schema(operation_id="pipelines_cancel",
                   description="Every step's run is canceled: pending blocks at once, calls in flight "
                               "finish and are recorded. The pipeline is `canceling`, then `canceled` "
                               "(once) when its last step's run has ended.",
                   responses={200: PipelineDetailSerializer, **error_responses(401, 404, 409, 429)})
    def post(self, request: Request, pipeline_id: str) -> Response:
        return pipeline_response(pipeline_cancel(pipeline_id=visible_pipeline(request, pipeline_id).pk))


@extend_schema(tags=["pipelines"], parameters=[PIPELINE_ID], request=None)
class PipelinePauseApi(APIView):
    throttle_scope = WRITES

    @extend_schema(operation_id="pipelines_pause",
                   description="Every queued or running step pauses; calls in flight finish and their "
                               "items wait in the next (paused) step.",
                   responses={200: PipelineDetailSerializer, **error_responses(401, 404, 409, 429)})
    def post(self, request: Request, pipeline_id: str) -> Response:
        return pipeline_response(pipeline_pause(pipeline_id=visible_pipeline(request, pipeline_id).pk))


@extend_schema(tags=["pipelines"], parameters=[PIPELINE_ID], request=None)
class PipelineResumeApi(APIView):
    throttle_scope = WRITES

    @extend_schema(operation_id="pipelines_resume",
                   description="Every paused step resumes; `still_paused` names those that cannot (a "
                               "budget that cannot pay for the next block) and why.",
                   responses={200: PipelineDetailSerializer, **error_responses(401, 404, 409, 429)})
    def post(self, request: Request, pipeline_id: str) -> Response:
        pipeline, refused = pipeline_resume(pipeline_id=visible_pipeline(request, pipeline_id).pk)
        return pipeline_response(pipeline, still_paused=refused)


class _PipelineStepActionApi(APIView):
    throttle_scope = WRITES
    action = ""

    def post(self, request: Request, pipeline_id: str, step: str) -> Response:
        pipeline = visible_pipeline(request, pipeline_id)
        try:
            pipeline_step_act(pipeline_id=pipeline.pk, step_name=step, action=self.action)
        except PipelineStep.DoesNotExist:
            raise NotFound(f"The pipeline has no step {step!r}.") from None
        pipeline.refresh_from_db()
        return pipeline_response(pipeline)


STEP_RESPONSES = {200: PipelineDetailSerializer, **error_responses(401, 404, 409, 429)}


@extend_schema(tags=["pipelines"], parameters=[PIPELINE_ID, STEP_NAME], request=None)
class PipelineStepCancelApi(_PipelineStepActionApi):
    action = "cancel"

    @extend_schema(operation_id="pipelines_steps_cancel", responses=STEP_RESPONSES,
                   description="Cancel one step's run: its items, and those still coming, stop there.")
    def post(self, request: Request, pipeline_id: str, step: str) -> Response:
        return super().post(request, pipeline_id, step)


@extend_schema(tags=["pipelines"], parameters=[PIPELINE_ID, STEP_NAME], request=None)
class PipelineStepPauseApi(_PipelineStepActionApi):
    action = "pause"

    @extend_schema(operation_id="pipelines_steps_pause", responses=STEP_RESPONSES,
                   description="Pause one step's run; earlier steps go on handing it blocks, which wait.")
    def post(self, request: Request, pipeline_id: str, step: str) -> Response:
        return super().post(request, pipeline_id, step)


@extend_schema(tags=["pipelines"], parameters=[PIPELINE_ID, STEP_NAME], request=None)
class PipelineStepResumeApi(_PipelineStepActionApi):
    action = "resume"

    @extend_schema(operation_id="pipelines_steps_resume", responses=STEP_RESPONSES,
                   description="Resume one paused step's run.")
    def post(self, request: Request, pipeline_id: str, step: str) -> Response:
        return super().post(request, pipeline_id, step)


@extend_schema(tags=["pipelines"], parameters=[PIPELINE_ID, STEP_NAME])
class PipelineStepReseedApi(APIView):
    throttle_scope = WRITES

    @extend_schema(
        operation_id="pipelines_steps_reseed",
        description="Reseed one step (as `POST /runs/<id>/reseed/` does its run: all blocks, the failed "
                    "ones, or a filter; optionally a new model or prompt) and send the items it takes "
                    "back through the later steps again: their later results are marked stale "
                    "(`stale` in the items' paths) until rewritten. Other items are not touched. A 409 "
                    "while an affected item is still moving in a later step, or the pipeline is paused "
                    "or canceled.",
        request=ReseedInputSerializer,
        responses={200: PipelineDetailSerializer, **error_responses(400, 401, 404, 409, 429)},
    )
    def post(self, request: Request, pipeline_id: str, step: str) -> Response:
        pipeline = visible_pipeline(request, pipeline_id)
        changes = validated_input(ReseedInputSerializer, request.data)
        try:
            pipeline_reseed_step(pipeline_id=pipeline.pk, step_name=step, **changes)
        except PipelineStep.DoesNotExist:
            raise NotFound(f"The pipeline has no step {step!r}.") from None
        pipeline.refresh_from_db()
        return pipeline_response(pipeline)


RESULTS_FORMAT = OpenApiParameter(
    "format", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False, enum=list(FORMATS),
    description="json (the default: an array of rows), jsonl or csv (a header row); or ask with Accept: "
                "application/x-ndjson, text/csv.")


@extend_schema(tags=["pipelines"], parameters=[PIPELINE_ID, RESULTS_FORMAT])
class PipelineResultsApi(APIView):
    renderer_classes = [JSONRenderer, NDJSONRenderer, CSVRenderer]

    @extend_schema(
        operation_id="pipelines_results",
        description="The results joined, streamed: one row per item (children of a fan-out too, with "
                    "`parent_uid`), its `status` and `step`, then per step a column per top-level field "
                    "of its output_schema (`<step>.<field>`; a free-text step's `<step>.output`) and "
                    "`<step>.stale`. Each step's own results, with their version stamps, are its run's "
                    "(`/runs/<run_id>/results/`).",
        responses={(200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="Rows."),
                   (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.OBJECT,
                                                                  description="One row per line."),
                   (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV with a header row."),
                   **error_responses(401, 404)},
    )
    def get(self, request: Request, pipeline_id: str) -> StreamingHttpResponse:
        pipeline = visible_pipeline(request, pipeline_id)
        fmt = request.accepted_renderer.format
        fmt = fmt if fmt in FORMATS else "json"
        response = StreamingHttpResponse(joined_export(pipeline, fmt), content_type=CONTENT_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="pipeline-{pipeline.pk}-results.{fmt}"'
        return response
