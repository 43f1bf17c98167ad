"""`/api/v1/runs/`: thin views over the run services and selectors.

Who may read and change which run is apps/teams/access.py's: a run the caller may not read is a 404,
like a missing one; one they may read but not change (a team's viewer, staff with view_run only) is a
403 that says why.
Errors leave in the shared shape (config/api/errors.py); writes are throttled (config/api/throttles.py).
"""

import re
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.services import actor_from_request
from apps.keys.models import ProviderKey
from apps.keys.selectors import key_usable_for
from apps.runs.auditing import run_audited, run_created
from apps.runs.caching import settings_warnings
from apps.runs.models import Run
from apps.runs.reporting.compare import runs_compare
from apps.runs.reporting.costs import run_cost_report
from apps.runs.reporting.exports import (
    CONTENT_TYPES,
    FORMATS,
    export_filename,
    failures_export,
    results_export,
)
from apps.runs.reporting.live import end_event_id, run_event_stream
from apps.runs.selectors import (
    block_get,
    run_block_status_counts,
    run_blocks,
    run_get_visible,
    runs_list,
)
from apps.runs.serializers.inputs import (
    BlockFilterSerializer,
    ReseedInputSerializer,
    RunBudgetInputSerializer,
    RunCompareFilterSerializer,
    RunCreateInputSerializer,
    RunFilterSerializer,
    RunUploadInputSerializer,
    stored_options,
)
from apps.runs.serializers.outputs import (
    BlockDetailSerializer,
    BlockSerializer,
    FailureLineSerializer,
    ResultLineSerializer,
    RunCompareSerializer,
    RunDetailSerializer,
    RunProgressSerializer,
    RunSerializer,
    RunWarningSerializer,
)
from apps.runs.services import (
    BlockSpec,
    SubmissionError,
    parse_jsonl,
    run_cancel,
    run_create_idempotent,
    run_resume,
    run_set_budget,
)
from apps.runs.services.deletion import run_delete
from apps.runs.services.reseed import run_reseed
from apps.runs.services.submission import run_for_repeated_request, run_preflight
from apps.runs.transitions import RUN_SETTLED
from apps.runs.uploads import (
    CountedBlocks,
    LineReader,
    TooManyBlocks,
    inline_blocks,
    json_fingerprint,
    upload_fingerprint,
)
from apps.teams.access import check_may_submit, check_write, teams_visible_to
from apps.teams.models import Team
from config.api.errors import (
    ErrorSerializer,
    InputError,
    PayloadTooLarge,
    error_responses,
    validated_input,
)
from config.api.pagination import IndexCursorPagination, PagePagination
from config.api.parsers import JSONParser
from config.api.renderers import CSVRenderer, EventStreamRenderer, NDJSONRenderer, ParquetRenderer
from config.api.throttles import UPLOADS, WRITES

IDEMPOTENCY_HEADER = "Idempotency-Key"
# 1 to 200 visible ASCII characters, spaces allowed inside: what any client can send in a header.
IDEMPOTENCY_KEY_PATTERN = r"^[!-~](?:[ -~]{0,198}[!-~])?$"

RUN_ID = OpenApiParameter("run_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
OTHER_RUN_ID = OpenApiParameter("other_run_id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                                description="The run to compare with (B).")
UID = OpenApiParameter("uid", OpenApiTypes.STR, OpenApiParameter.PATH, description="The block's uid.")
LAST_EVENT_ID = OpenApiParameter(
    "Last-Event-ID", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="The id of the last event received (EventSource sends it when it reconnects): an "
                "unchanged run is not described again, and a run whose `end` was received answers 204.",
)
IDEMPOTENCY_KEY = OpenApiParameter(
    IDEMPOTENCY_HEADER, {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN}, OpenApiParameter.HEADER,
    required=False,
    description="1 to 200 visible ASCII characters. A create retried with the same key and the same "
                "body returns the first run (200) instead of creating another (201); the same key with "
                "a different body is a 422 `idempotency_key_reused`.",
)


# --- helpers ---------------------------------------------------------------------------------------

def visible_run(request: Request, run_id: str, *, write: bool = False) -> Run:
    """The run if the caller may read it (else 404); with `write`, also change it (else 403)."""
    run = run_get_visible(user=request.user, run_id=run_id)
    if run is None:
        raise NotFound("No such run.")
    if write:
        check_write(request.user, run)
    return run


def submitting_team(request: Request, team_id: int | None) -> Team | None:
    """The team a run is submitted for: one the caller belongs to (else 400 naming `team`), as an
    admin or a member (a viewer: 403 saying so)."""
    if team_id is None:
        return None
    team = teams_visible_to(request.user).filter(pk=team_id).first()
    if team is None or not team.memberships.filter(user_id=request.user.pk or 0).exists():
        raise InputError({"team": ["unknown team: you are not a member of it"]})
    check_may_submit(request.user, team)
    return team


def submission_key(request: Request, data: dict[str, Any], team: Team | None) -> Any:
    key = key_usable_for(user=request.user, key_id=data.pop("key"), team=team)
    if key is None:
        raise InputError({"key": ["unknown key: a team's run needs one of the team's keys" if team
                                  else "unknown key"]})
    return key


def run_response(run: Run, *, status_code: int = status.HTTP_200_OK) -> Response:
    context = {"block_statuses": run_block_status_counts(run_id=run.pk), "cost": run_cost_report(run)}
    return Response(RunDetailSerializer(run, context=context).data, status=status_code)


def submission_error(exc: SubmissionError, *, upload: bool) -> InputError:
    """A service's complaint as a field error: in an upload the field at fault is `file` (and the
    line is named); inline, it is the block's position, e.g. `blocks.3.uid`."""
    if exc.line is None:
        field = exc.field or "non_field_errors"
        if upload and field == "blocks":
            field = "file"
        return InputError({field: [exc.message]})
    if upload:
        return InputError({"file": [f"line {exc.line}: {exc.message}"]}, line=exc.line)
    path = f"blocks.{exc.line - 1}" + (f".{exc.field}" if exc.field else "")
    return InputError({path: [exc.message]})


# --- runs ------------------------------------------------------------------------------------------

class RunListCreateApi(GenericAPIView):
    serializer_class = RunSerializer
    pagination_class = PagePagination
    parser_classes = [JSONParser, MultiPartParser]
    throttle_scope = UPLOADS

    @extend_schema(operation_id="runs_list", tags=["runs"], parameters=[RunFilterSerializer],
                   responses={200: RunSerializer(many=True), **error_responses(400, 401, 404)})
    def get(self, request: Request) -> Response:
        runs = runs_list(user=request.user, **validated_input(RunFilterSerializer, request.query_params))
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(RunSerializer(page, many=True).data)

    @extend_schema(
        operation_id="runs_create", tags=["runs"],
        summary="Create a run, with blocks inline (JSON) or as a JSONL file (multipart).",
        description=(
            "JSON: the fields below with `blocks` inline (at most MAX_JSON_BODY_BYTES, 10 MB by "
            "default). Multipart: the same fields as form fields, `options` as a JSON string, and "
            "the blocks as a JSONL `file` (at most MAX_UPLOAD_BYTES, 200 MB, and 100,000 blocks), "
            "streamed into the database. A bad line is reported with its number and nothing is "
            "created."
        ),
        request={"application/json": RunCreateInputSerializer,
                 "multipart/form-data": RunUploadInputSerializer},
        parameters=[IDEMPOTENCY_KEY],
        responses={
            201: RunDetailSerializer,
            200: OpenApiResponse(RunDetailSerializer,
                                 description="An earlier create with this Idempotency-Key and body."),
            409: OpenApiResponse(ErrorSerializer,
                                 description="`key_invalid`: the key's last validation failed."),
            422: OpenApiResponse(ErrorSerializer, description="`idempotency_key_reused`: the "
                                 "Idempotency-Key was used with a different body."),
            **error_responses(400, 401, 403, 413, 415, 429),
        },
    )
    def post(self, request: Request) -> Response:
        idempotency_key = self._idempotency_key(request)
        upload = request.content_type.split(";")[0].strip().lower() == "multipart/form-data"
        self._check_length(request, upload=upload)
        fingerprint = ""
        if idempotency_key:
            fingerprint = upload_fingerprint(request.data) if upload else json_fingerprint(request.data)
            existing = run_for_repeated_request(owner=request.user, idempotency_key=idempotency_key,
                                                request_fingerprint=fingerprint)
            if existing is not None:
                return run_response(existing)
        data, blocks = self._upload(request) if upload else self._inline(request)
        team = submitting_team(request, data.pop("team", None))
        keys = pool_of(request, data, team)
        counted = CountedBlocks(blocks, limit=settings.MAX_UPLOAD_BLOCKS)
        try:
            run = run_create_idempotent(owner=request.user, team=team, keys=keys, blocks=counted,
                                        idempotency_key=idempotency_key, request_fingerprint=fingerprint,
                                        **data)
        except TooManyBlocks as exc:
            raise PayloadTooLarge(str(exc)) from None
        except SubmissionError as exc:
            raise submission_error(exc, upload=upload) from None
        # Blocks never read: a concurrent create with this Idempotency-Key won, and this is its run.
        created = counted.count > 0
        if created:
            run_created(actor_from_request(request), run)
        return run_response(run, status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @staticmethod
    def _idempotency_key(request: Request) -> str | None:
        value = request.headers.get(IDEMPOTENCY_HEADER)
        if value is None:
            return None
        if not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, value):
            raise InputError({IDEMPOTENCY_HEADER: [
                "must be 1 to 200 visible ASCII characters (spaces allowed inside)"
            ]})
        return value

    @staticmethod
    def _check_length(request: Request, *, upload: bool) -> None:
        """Refuse before reading: the announced length is all the body there is (WSGI reads no
        further), so nothing over the limit is ever parsed or spooled."""
        limit = settings.MAX_UPLOAD_BYTES if upload else settings.MAX_JSON_BODY_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            hint = "" if upload else "; upload the blocks as a JSONL file (multipart) instead"
            raise PayloadTooLarge(f"the request body is larger than {limit:,} bytes{hint}")

    @staticmethod
    def _inline(request: Request) -> tuple[dict[str, Any], Iterator[BlockSpec]]:
        raw = request.data
        if isinstance(raw, dict) and isinstance(raw.get("blocks"), list) and (
            len(raw["blocks"]) > settings.MAX_UPLOAD_BLOCKS
        ):
            raise PayloadTooLarge(str(TooManyBlocks(settings.MAX_UPLOAD_BLOCKS)))
        data = validated_input(RunCreateInputSerializer, raw)
        data["options"] = stored_options(data.get("options"))
        return data, inline_blocks(data.pop("blocks"))

    @staticmethod
    def _upload(request: Request) -> tuple[dict[str, Any], Iterator[BlockSpec]]:
        data = validated_input(RunUploadInputSerializer, request.data)
        data["options"] = stored_options(data.get("options"))
        uploaded = data.pop("file")
        uploaded.seek(0)
        return data, parse_jsonl(LineReader(uploaded))


def pool_of(request: Request, data: dict[str, Any], team: Team | None = None) -> list[ProviderKey]:
    """The run's pool of keys from `key` and `keys` (popped from `data`): each one of the user's
    personal keys (a team's run: the team's keys), each once. Refused before anything is created,
    naming the field and nothing about the key."""
    named = data.pop("keys", None) or []
    first = data.pop("key", None)
    ids = ([first] if first is not None else []) + list(named)
    if not ids:
        raise InputError({"key": ["This field is required (or `keys`)."]})
    if len(set(ids)) != len(ids):
        raise InputError({"keys": ["the same key is named twice"]})
    keys = []
    for key_id in ids:
        key = key_usable_for(user=request.user, key_id=key_id, team=team)
        if key is None:
            raise InputError({"key" if key_id == first else "keys": [
                "unknown key: a team's run needs one of the team's keys" if team else "unknown key"]})
        keys.append(key)
    return keys


class RunEstimateOutputSerializer(serializers.Serializer):
    blocks = serializers.IntegerField()
    calls = serializers.IntegerField()
    input_tokens = serializers.DictField(child=serializers.IntegerField(),
                                         help_text="`low` (4 characters per token) and `high`.")
    output_tokens = serializers.DictField(child=serializers.IntegerField(),
                                          help_text="`max`: every call writing its full max_tokens.")
    cost_usd = serializers.DictField(
        child=serializers.CharField(),
        help_text="`low`: input only, with the cacheable prefix read from the cache after the first "
                  "call; `high`: the worst case, which is what a budget reserves before each call.")
    warnings = RunWarningSerializer(many=True, help_text="What a create with these settings would be "
                                    "warned about (cache_prefix_too_short).")


@extend_schema(tags=["runs"])
class RunEstimateApi(APIView):
    parser_classes = [JSONParser, MultiPartParser]
    throttle_scope = UPLOADS

    @extend_schema(
        operation_id="runs_estimate",
        summary="What a run would take, before it starts: tokens and cost as a range.",
        description="The same body as a create (blocks inline, or a JSONL file), checked the same way; "
                    "nothing is created and no provider is called.",
        request={"application/json": RunCreateInputSerializer,
                 "multipart/form-data": RunUploadInputSerializer},
        responses={200: RunEstimateOutputSerializer, **error_responses(400, 401, 413, 415, 429)},
    )
    def post(self, request: Request) -> Response:
        upload = request.content_type.split(";")[0].strip().lower() == "multipart/form-data"
        RunListCreateApi._check_length(request, upload=upload)
        data, blocks = RunListCreateApi._upload(request) if upload else RunListCreateApi._inline(request)
        pool_of(request, data, submitting_team(request, data.pop("team", None)))
        try:
            estimate = run_preflight(blocks=CountedBlocks(blocks, limit=settings.MAX_UPLOAD_BLOCKS),
                                     **data)
        except TooManyBlocks as exc:
            raise PayloadTooLarge(str(exc)) from None
        except SubmissionError as exc:
            raise submission_error(exc, upload=upload) from None
        warnings = settings_warnings(blocks=estimate.blocks, **data)
        return Response(RunEstimateOutputSerializer({**estimate.as_dict(), "warnings": warnings}).data)


class RunDeletingSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    deleting_at = serializers.DateTimeField(help_text="When the deletion was asked for.")


@extend_schema(parameters=[RUN_ID], tags=["runs"])
class RunDetailApi(APIView):
    throttle_scope = WRITES  # its DELETE; reads are not throttled

    @extend_schema(operation_id="runs_retrieve",
                   responses={200: RunDetailSerializer, **error_responses(401, 404)})
    def get(self, request: Request, run_id: str) -> Response:
        return run_response(visible_run(request, run_id))

    @extend_schema(
        operation_id="runs_destroy",
        description="Delete an ended run and everything of it (blocks, attempts, failures, logs), in the "
                    "background: it is gone from every list at once. A run that may still work is a 409: "
                    "cancel it first. Audit records of it stay.",
        request=None, responses={202: RunDeletingSerializer, **error_responses(401, 404, 409, 429)},
    )
    def delete(self, request: Request, run_id: str) -> Response:
        pk = visible_run(request, run_id).pk
        run = run_audited(actor_from_request(request), "delete", pk, lambda: run_delete(run_id=pk))
        return Response({"id": str(run.pk), "deleting_at": run.deleting_at}, status=status.HTTP_202_ACCEPTED)


@extend_schema(parameters=[RUN_ID], tags=["runs"], request=None)
class RunCancelApi(APIView):
    throttle_scope = WRITES

    @extend_schema(
        operation_id="runs_cancel",
        description="Pending blocks are canceled at once; calls in flight finish and are recorded.",
        responses={200: RunDetailSerializer, **error_responses(401, 403, 404, 409, 429)},
    )
    def post(self, request: Request, run_id: str) -> Response:
        pk = visible_run(request, run_id, write=True).pk
        return run_response(run_audited(actor_from_request(request), "cancel", pk,
                                        lambda: run_cancel(run_id=pk)))


@extend_schema(parameters=[RUN_ID], tags=["runs"], request=None)
class RunResumeApi(APIView):
    throttle_scope = WRITES

    @extend_schema(operation_id="runs_resume", description="Resume a paused run.",
                   responses={200: RunDetailSerializer, **error_responses(401, 403, 404, 409, 429)})
    def post(self, request: Request, run_id: str) -> Response:
        pk = visible_run(request, run_id, write=True).pk
        return run_response(run_audited(actor_from_request(request), "resume", pk,
                                        lambda: run_resume(run_id=pk)))


@extend_schema(parameters=[RUN_ID], tags=["runs"])
class RunBudgetApi(APIView):
    throttle_scope = WRITES

    @extend_schema(
        operation_id="runs_budget",
        description=(
            "Set the run's budget (`options.max_cost_usd`), or remove it with null. A run paused by its "
            "budget resumes at once if what the new budget leaves can pay for its next block's worst "
            "case; otherwise it stays paused, its `paused_reason` saying what that block could cost."
        ),
        request=RunBudgetInputSerializer,
        responses={200: RunDetailSerializer, **error_responses(400, 401, 403, 404, 429)},
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = visible_run(request, run_id, write=True)
        data = validated_input(RunBudgetInputSerializer, request.data)
        budget = data["max_cost_usd"]
        return run_response(run_audited(actor_from_request(request), "budget", run.pk,
                                        lambda: run_set_budget(run_id=run.pk, max_cost_usd=budget)))


@extend_schema(parameters=[RUN_ID], tags=["runs"])
class RunReseedApi(APIView):
    throttle_scope = WRITES

    @extend_schema(
        operation_id="runs_reseed",
        description=(
            "Start a new pass over the same run: all blocks, only failed ones, or those matching a "
            "filter (status, error_code, prompt_version, pipeline_version), optionally with a changed "
            "model or prompt. "
            "Earlier passes stay readable in each block's attempts. A run still in progress is a 409."
        ),
        request=ReseedInputSerializer,
        responses={200: RunDetailSerializer, **error_responses(400, 401, 403, 404, 409, 429)},
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = visible_run(request, run_id, write=True)
        changes = validated_input(ReseedInputSerializer, request.data)
        return run_response(run_audited(actor_from_request(request), "reseed", run.pk,
                                        lambda: run_reseed(run_id=run.pk, **changes),
                                        scope=changes.get("scope")))


@extend_schema(parameters=[RUN_ID, OTHER_RUN_ID], tags=["runs"])
class RunCompareApi(APIView):
    @extend_schema(
        operation_id="runs_compare",
        summary="Two runs side by side: cost, tokens, cache hit rate, calls, and output parity by uid.",
        description=(
            "Both runs must be visible to you (else 404). Parity matches blocks by uid: exact matches, "
            "the uids that differ, and for outputs that are JSON objects, matches per field. Each uid "
            "list holds at most `limit` uids, with its full count."
        ),
        parameters=[RunCompareFilterSerializer],
        responses={200: RunCompareSerializer, **error_responses(400, 401, 404)},
    )
    def get(self, request: Request, run_id: str, other_run_id: str) -> Response:
        run_a, run_b = visible_run(request, run_id), visible_run(request, other_run_id)
        limit = validated_input(RunCompareFilterSerializer, request.query_params)["limit"]
        return Response(RunCompareSerializer(runs_compare(run_a, run_b, limit=limit).as_dict()).data)


# --- blocks and results ------------------------------------------------------------------------------

@extend_schema(parameters=[RUN_ID], tags=["blocks"])
class RunBlockListApi(GenericAPIView):
    serializer_class = BlockSerializer
    pagination_class = IndexCursorPagination

    @extend_schema(operation_id="runs_blocks_list", parameters=[BlockFilterSerializer],
                   responses={200: BlockSerializer(many=True), **error_responses(400, 401, 404)})
    def get(self, request: Request, run_id: str) -> Response:
        run = visible_run(request, run_id)
        blocks = run_blocks(run_id=run.pk, **validated_input(BlockFilterSerializer, request.query_params))
        page = self.paginate_queryset(blocks)
        return self.get_paginated_response(BlockSerializer(page, many=True).data)


@extend_schema(parameters=[RUN_ID, UID], tags=["blocks"])
class RunBlockDetailApi(APIView):
    @extend_schema(operation_id="runs_blocks_retrieve",
                   responses={200: BlockDetailSerializer, **error_responses(401, 404)})
    def get(self, request: Request, run_id: str, uid: str) -> Response:
        run = visible_run(request, run_id)
        block = block_get(run_id=run.pk, uid=uid)
        if block is None:
            raise NotFound("No such block in this run.")
        return Response(BlockDetailSerializer(block).data)


EXPORT_FORMAT = OpenApiParameter(
    "format", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False, enum=list(FORMATS),
    description="jsonl (the default), csv (a header row, then one flat row per block) or parquet (a typed "
                "schema whose fields carry a description); or ask with Accept: application/x-ndjson, "
                "text/csv, application/vnd.apache.parquet.")
FLAT_EXPORT = ("A structured run's answer is flattened into `output.<field>` columns from its schema "
               "(nested objects as `output.a.b`, arrays and unions as JSON text); a free-text run has "
               "one `output` column; every metadata key of the run is a `metadata.<key>` column.")


class ExportApi(APIView):
    """A streamed export of a run in the format asked for (apps/runs/reporting/exports.py)."""

    renderer_classes = [JSONRenderer, NDJSONRenderer, CSVRenderer, ParquetRenderer]

    def export(self, request: Request, run: Run, *, failures: bool) -> StreamingHttpResponse:
        fmt = request.accepted_renderer.format
        fmt = fmt if fmt in FORMATS else "jsonl"
        chunks = failures_export(run, fmt) if failures else results_export(run, fmt)
        response = StreamingHttpResponse(chunks, content_type=CONTENT_TYPES[fmt])
        response["Content-Disposition"] = (
            f'attachment; filename="{export_filename(run, fmt, failures=failures)}"')
        return response


def export_responses(line: type[serializers.Serializer]) -> dict[Any, Any]:
    return {
        (200, "application/x-ndjson"): OpenApiResponse(line, description="One such object per line."),
        (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV with a header row."),
        (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY,
                                                                 description="A Parquet file."),
        **error_responses(401, 404),
    }


@extend_schema(parameters=[RUN_ID, EXPORT_FORMAT], tags=["runs"])
class RunResultsApi(ExportApi):
    @extend_schema(
        operation_id="runs_results",
        description="Every block's result, one line (or row) per block in block order, streamed: JSONL, "
                    f"CSV or Parquet. {FLAT_EXPORT}",
        responses=export_responses(ResultLineSerializer),
    )
    def get(self, request: Request, run_id: str) -> StreamingHttpResponse:
        return self.export(request, visible_run(request, run_id), failures=False)


@extend_schema(parameters=[RUN_ID, EXPORT_FORMAT], tags=["runs"])
class RunFailuresExportApi(ExportApi):
    @extend_schema(
        operation_id="runs_failures_export",
        description="The run's dead-letter rows (its failed blocks), one per line or row in block order, "
                    "streamed in the same formats as results/: each with its error, attempts, state and "
                    "the raw text of an answer the run's schema refused. Every metadata key of the run is "
                    "a `metadata.<key>` column in CSV and Parquet.",
        responses=export_responses(FailureLineSerializer),
    )
    def get(self, request: Request, run_id: str) -> StreamingHttpResponse:
        return self.export(request, visible_run(request, run_id), failures=True)


@extend_schema(parameters=[RUN_ID, LAST_EVENT_ID], tags=["runs"])
class RunEventsApi(APIView):
    """Live progress as Server-Sent Events (apps/runs/reporting/live.py). A plain GET with the API's
    authentication, so EventSource works with the admin's session and `curl -N` with a token."""

    renderer_classes = [JSONRenderer, EventStreamRenderer]

    @extend_schema(
        operation_id="runs_events",
        summary="Live progress: counts, rate, cost and lane state as Server-Sent Events, until the run ends.",
        description=(
            "A `progress` event (data: the object below) whenever the run's snapshot changes, checked "
            "about once a second; a comment line every 15 s of quiet (keep-alive); and a last `end` "
            "event (the same object, its final state) when the run is complete, canceled or paused, "
            "after which the stream closes. A stream also closes after RUN_EVENTS_MAX_SECONDS (300 s) "
            "with a `retry:` hint; EventSource reconnects by itself, sending Last-Event-ID. Each event "
            "has an `id`. Errors (401, 404) answer in the shared shape, as JSON or as one `error` event."
        ),
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                RunProgressSerializer, description="Events whose data is one such object each."),
            204: OpenApiResponse(description="The run has ended and Last-Event-ID names its `end` event: "
                                 "nothing more will happen (EventSource stops reconnecting)."),
            **error_responses(401, 404),
        },
    )
    def get(self, request: Request, run_id: str) -> HttpResponse | StreamingHttpResponse:
        run = visible_run(request, run_id)
        last_event_id = request.headers.get("Last-Event-ID")
        if run.status in RUN_SETTLED and last_event_id == end_event_id(run):
            return HttpResponse(status=status.HTTP_204_NO_CONTENT)
        response = StreamingHttpResponse(run_event_stream(run.pk, last_event_id=last_event_id),
                                         content_type="text/event-stream; charset=utf-8")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once, not a buffer's worth
        return response
