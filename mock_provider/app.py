"""The API's handlers (/v1/messages, count_tokens, models) and the envelope every request goes through;
the Message Batches endpoints are in batch_api.py and use the same envelope and checks.

Order of checks on /v1/messages, as the API (and the Cloudflare in front of it) does them: body size
(413), API key (401), anthropic-version (400), JSON and fields (400), model (404), rate limits (429),
then injected faults, then the reply. A fault decided by a directive or a random draw only fires on
a request that got that far, so a throttled request does not use up a directive's `times`.
"""

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import web

from mock_provider.errors import MockAPIError, error_response, invalid_request, stream_error_frame
from mock_provider.faults import Directive, decide_request_fault, find_directives
from mock_provider.models import MODELS, find_model
from mock_provider.prompt import API_VERSIONS, ParsedRequest, parse_request
from mock_provider.ratelimit import RateLimiter
from mock_provider.replies import Reply, generate, shape_reply
from mock_provider.state import MockState
from mock_provider.stats import RequestRecord, key_label
from mock_provider.wire import Usage, dumps, message_json, new_id, stream_frames

log = logging.getLogger(__name__)

STATE = web.AppKey("mock_state", MockState)
RECORD = web.RequestKey("mock_record", RequestRecord)
API_KEY = web.RequestKey("mock_api_key", str)

ORGANIZATION_ID = "00000000-0000-4000-8000-00000000a0c1"
CONTROL_PREFIX = "/_mock/"

T = TypeVar("T")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=dumps(data), content_type="application/json")


def _http_exception_error(exc: web.HTTPException) -> MockAPIError:
    if exc.status == 413:
        return MockAPIError(413)
    if exc.status == 404:
        return MockAPIError(404, "Not Found")
    if exc.status == 405:
        return MockAPIError(405, "Method Not Allowed")
    return MockAPIError(exc.status, exc.reason)


@web.middleware
async def envelope(request: web.Request, handler: Any) -> web.StreamResponse:
    """Give every response a request-id and the API's error body, and record it in the stats."""
    state = request.app[STATE]
    retry = request.headers.get("x-stainless-retry-count", "")
    resource = request.match_info.route.resource
    record = RequestRecord(
        seq=state.next_seq(), t=state.clock.now(), method=request.method, path=request.path,
        request_id=new_id("req_"), retry_count=int(retry) if retry.isdigit() else None,
        # Counted by route, so a counter per batch id (or model id) cannot pile up.
        route=resource.canonical if resource is not None else request.path,
    )
    request[RECORD] = record
    # The control API is how tests read the stats: recording it would only blur them.
    recorded = not request.path.startswith(CONTROL_PREFIX)
    if recorded:
        state.stats.begin(record)
    try:
        try:
            response = await handler(request)
        except MockAPIError as exc:
            response = error_response(exc, record.request_id)
        except web.HTTPException as exc:  # the router's 404/405
            response = error_response(_http_exception_error(exc), record.request_id)
        except (asyncio.CancelledError, ConnectionError):
            raise  # the client went away; nothing can be sent
        except Exception:
            # A bug in the mock must still look like the API (a 500 api_error), never a traceback.
            log.exception("mock provider failed on %s %s", request.method, request.path)
            response = error_response(MockAPIError(500, "Internal server error"), record.request_id)
        if not response.prepared:
            response.headers.update(common_headers(state, request, record))
        record.status = response.status
        if not record.outcome:
            record.outcome = "ok" if response.status < 400 else "error"
        return response
    finally:
        if not record.outcome:
            record.outcome = "disconnected"
        if recorded:
            state.stats.finish(record, state.clock.now())


def common_headers(state: MockState, request: web.Request, record: RequestRecord) -> dict[str, str]:
    headers = {"request-id": record.request_id, "anthropic-organization-id": ORGANIZATION_ID}
    key = request.get(API_KEY)
    if key is not None:
        headers.update(state.limiter.headers(key))
    return headers


# --- checks shared by the /v1 endpoints ---------------------------------------------------------------

def _check_declared_size(request: web.Request, limit: int) -> None:
    length = request.content_length
    if length is not None and length > limit:
        raise MockAPIError(413)


def _authenticate(request: web.Request, state: MockState) -> str:
    key = request.headers.get("x-api-key", "")
    if not key:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            key = token.strip()
    if not key:
        raise MockAPIError(401, "x-api-key header is required")
    if state.config.api_keys and key not in state.config.api_keys:
        raise MockAPIError(401, "invalid x-api-key")
    request[API_KEY] = key
    request[RECORD].api_key = key_label(key)
    return key


def _api_version(request: web.Request) -> str:
    version = request.headers.get("anthropic-version")
    if not version:
        raise invalid_request("anthropic-version: header is required")
    if version not in API_VERSIONS:
        raise invalid_request(f"anthropic-version: {version!r} is not a supported version; "
                              f"use one of {', '.join(sorted(API_VERSIONS))}")
    return version


async def read_json(request: web.Request, limit: int) -> Any:
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > limit:  # a chunked body has no declared size to check up front
            raise MockAPIError(413)
    try:
        # One C call that holds the GIL: a batch body of tens of MB stalls the loop while it parses
        # (~0.3 s for 47 MB here), and a thread would not help.
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_request(f"There was an error parsing the body of your request: {exc}") from None


async def open_v1(request: web.Request, max_body_bytes: int | None = None) -> tuple[MockState, str, str]:
    """The checks every /v1 endpoint starts with: declared size (413), key (401), version (400)."""
    state = request.app[STATE]
    _check_declared_size(request, state.config.max_body_bytes if max_body_bytes is None else max_body_bytes)
    key = _authenticate(request, state)
    return state, key, _api_version(request)


def paginate(items: Sequence[T], query: Mapping[str, str], position: Callable[[str, str], int]
             ) -> tuple[Sequence[T], bool]:
    """One page of a newest-first list as the API pages it: `limit` (1-1000, default 20) items after
    `after_id` or before `before_id`; `position(id, parameter)` finds a cursor (or raises a 400).
    Returns the page and whether there are more in that direction (`has_more`)."""
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise invalid_request("limit: Input should be a valid integer") from None
    if not 1 <= limit <= 1000:
        raise invalid_request("limit: Input should be between 1 and 1000")
    if "before_id" in query:
        candidates = items[:position(query["before_id"], "before_id")]
        page = candidates[-limit:]
    else:
        start = position(query["after_id"], "after_id") + 1 if "after_id" in query else 0
        candidates = items[start:]
        page = candidates[:limit]
    return page, len(candidates) > len(page)


# --- POST /v1/messages --------------------------------------------------------------------------------

def _injected_error(status: int, retry_after: int | None) -> MockAPIError:
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    return MockAPIError(status, headers=headers)


async def _drop(request: web.Request, record: RequestRecord) -> None:
    record.outcome = "dropped"
    if request.transport is not None:
        request.transport.close()
    # The server cancels a handler whose connection is lost (handler_cancellation): wait for that,
    # but not forever should the app ever run without it.
    await asyncio.sleep(5)
    raise ConnectionResetError("dropped by the mock")


async def _apply_fault(request: web.Request, state: MockState, parsed: ParsedRequest,
                       directives: list[Directive]) -> bool:
    """Fire the request-level fault, if any; returns True when the stream must break midway."""
    fault = decide_request_fault(state.counters, state.random_faults, directives, stream=parsed.stream,
                                 fault_retry_after=state.config.fault_retry_after)
    if fault is None:
        return False
    record = request[RECORD]
    record.fault = fault.label
    if fault.action == "status":
        raise _injected_error(fault.status or 500, fault.retry_after)
    if fault.action == "hang":
        await asyncio.sleep(state.config.hang_seconds)
    elif fault.action == "drop":
        await _drop(request, record)
    return fault.action == "stream_error"


async def create_message(request: web.Request) -> web.StreamResponse:
    state, key, version = await open_v1(request)
    record = request[RECORD]
    parsed = parse_request(await read_json(request, state.config.max_body_bytes), version=version)
    record.model, record.stream = parsed.model_name, parsed.stream
    if {parsed.model_name, parsed.model.id} & state.config.models_not_found:
        # A model retired, or not enabled for this key: the API's 404 names it.
        raise MockAPIError(404, f"model: {parsed.model_name}")
    record.structured = parsed.output_schema is not None
    directives = find_directives(parsed)

    plan = state.cache.plan(key, parsed)
    admission = state.limiter.admit(key, input_cost=plan.input_tokens + plan.creation_tokens)
    if not admission.admitted:
        raise MockAPIError(429, RateLimiter.refusal_message(admission),
                           headers={"retry-after": str(admission.retry_after)})
    break_stream = await _apply_fault(request, state, parsed, directives)

    shape = shape_reply(directives, state.counters.take)
    reply = generate(parsed, shape)
    state.limiter.charge_output(key, reply.output_tokens)
    usage = Usage.of(plan, reply)
    first_byte_delay = (state.reply_latency_ms() + shape.extra_latency_ms) / 1000
    message_id = new_id("msg_")
    if parsed.stream:
        if first_byte_delay > 0:
            await asyncio.sleep(first_byte_delay)
        state.cache.commit(plan)  # usable by others once the reply has started
        return await _stream(request, state, parsed, message_id, reply, usage, break_stream)

    delay = first_byte_delay + state.config.latency_per_token_ms * reply.output_tokens / 1000
    if delay > 0:
        await asyncio.sleep(delay)
    state.cache.commit(plan)
    record.usage = _billed(usage.to_json())
    return json_response(message_json(message_id, parsed.model_name, reply, usage))


def _billed(usage: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in usage.items() if isinstance(v, int)}


async def _stream(request: web.Request, state: MockState, parsed: ParsedRequest, message_id: str,
                  reply: Reply, usage: Usage, break_stream: bool) -> web.StreamResponse:
    record = request[RECORD]
    # Everything that could fail is done before the 200 goes out; after it only the socket can.
    frames = stream_frames(message_id, parsed.model_name, reply, usage)
    response = web.StreamResponse(headers={
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        **common_headers(state, request, record),
    })
    await response.prepare(request)
    deltas = frames.deltas
    if break_stream:
        deltas = deltas[: max(1, len(deltas) // 2)]
    # After the 200 went out, the API reports an error as an `event: error` frame and stops.
    ending = stream_error_frame() if break_stream else frames.tail
    per_token = state.config.latency_per_token_ms / 1000
    if per_token > 0:
        await response.write(frames.head)
        for delta, tokens in deltas:
            await asyncio.sleep(per_token * tokens)
            await response.write(delta)
        await response.write(ending)
    else:
        # No pacing asked for: one write is much cheaper than one per frame.
        await response.write(frames.head + b"".join(d for d, _ in deltas) + ending)
    sent_tokens = sum(tokens for _, tokens in deltas)
    if break_stream:
        record.outcome = "stream_error"
        record.usage = _billed(usage.to_json(output_tokens=sent_tokens))
    else:
        record.usage = _billed(usage.to_json())
    await response.write_eof()
    return response


# --- POST /v1/messages/count_tokens, GET /v1/models ----------------------------------------------------

async def count_tokens(request: web.Request) -> web.Response:
    state, _, version = await open_v1(request)
    parsed = parse_request(await read_json(request, state.config.max_body_bytes), version=version,
                           count_only=True)
    request[RECORD].model = parsed.model_name
    return json_response({"input_tokens": parsed.input_tokens})


def _model_position(model_id: str, parameter: str) -> int:
    model = find_model(model_id)
    if model is None:
        raise invalid_request(f"{parameter}: unknown model id {model_id!r}")
    return MODELS.index(model)


async def list_models(request: web.Request) -> web.Response:
    await open_v1(request)
    page, has_more = paginate(MODELS, request.query, _model_position)  # MODELS is newest first
    return json_response({
        "data": [m.to_json() for m in page],
        "has_more": has_more,
        "first_id": page[0].id if page else None,
        "last_id": page[-1].id if page else None,
    })


async def get_model(request: web.Request) -> web.Response:
    await open_v1(request)
    model_id = request.match_info["model_id"]
    model = find_model(model_id)
    if model is None:
        raise MockAPIError(404, f"model: {model_id}")
    return json_response(model.to_json())
