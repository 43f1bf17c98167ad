"""The Message Batches API: `/v1/messages/batches` (create, list), `/{id}` (retrieve, delete),
`/{id}/cancel` and `/{id}/results`, and the answering of each batch request.

Create checks what the API checks up front: body size (413, against `batch_max_body_bytes`), key (401),
anthropic-version (400), then the shape of `requests` (400): a list of 1 to `batch_max_requests` items,
each with a unique `custom_id` matching `^[a-zA-Z0-9_-]{1,64}$` and an object as `params`. What `params`
say is validated only when the request is answered, as the API does: a bad one ends up `errored` with
the same error body /v1/messages would have answered it with.

A request is answered like the same body sent to /v1/messages: same validation, directives, prompt
cache (keyed by the batch's API key, at the request's time on the mock's clock), reply and usage, with
`service_tier: "batch"` and no per-minute rate limit. Request-level faults (directives and random
`fault_rates`) make it `errored` with that status's error body; `hang` and `drop`, which have no response
of their own, give `timeout_error` and `api_error`; `stream_error` does not apply (batch requests do not
stream); `[[mock:expire]]` holds it back until the batch expires.

Every handler first settles the batches (answers whatever is due by now on the mock's clock), so what a
client reads is a function of the clock alone; a background task does the same whenever the next event
comes due, so batches also end in real time with nobody reading them.
"""

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any

from aiohttp import web

from mock_provider.app import RECORD, STATE, common_headers, json_response, open_v1, paginate, read_json
from mock_provider.batches import Answer, Batch, BatchRequest
from mock_provider.errors import MockAPIError, error_body, invalid_request
from mock_provider.faults import decide_request_fault, find_directives
from mock_provider.prompt import parse_request
from mock_provider.replies import generate, shape_reply
from mock_provider.state import MockState
from mock_provider.wire import Usage, message_json, new_id

log = logging.getLogger(__name__)

CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
CUSTOM_ID_PATTERN = "^[a-zA-Z0-9_-]{1,64}$"
# Answering yields to the event loop this often, so a 100,000-request batch never stalls other clients.
SLICE_SECONDS = 0.005
RESULTS_CHUNK_BYTES = 256 * 1024
# The errors a fault without a response of its own turns into, in a batch.
NO_RESPONSE_FAULTS = {"hang": 504, "drop": 500}


# --- answering one request -------------------------------------------------------------------------

def _errored(exc: MockAPIError, fault: str | None = None) -> Answer:
    body = error_body(exc.error_type, exc.message, new_id("req_"))
    return Answer({"type": "errored", "error": body}, fault=fault)


def _answer(state: MockState, batch: Batch, params: Any, at: float) -> Answer:
    parsed = parse_request(params, version=batch.api_version)
    if {parsed.model_name, parsed.model.id} & state.config.models_not_found:
        raise MockAPIError(404, f"model: {parsed.model_name}")  # as a live call: the request errored
    if parsed.stream:
        raise invalid_request("stream: streaming is not supported for requests in a message batch")
    directives = find_directives(parsed)
    held = state.counters.take_expire(directives)
    if held is not None:
        return Answer(None, fault=f"directive:{held.label}")
    plan = state.cache.plan(batch.api_key, parsed, now=at)
    fault = decide_request_fault(state.counters, state.batch_faults, directives, stream=False,
                                 fault_retry_after=state.config.fault_retry_after)
    if fault is not None:
        status = fault.status if fault.action == "status" else NO_RESPONSE_FAULTS[fault.action]
        return _errored(MockAPIError(status or 500), fault.label)
    reply = generate(parsed, shape_reply(directives, state.counters.take))
    usage = Usage.of(plan, reply, service_tier="batch")
    state.cache.commit(plan, now=at)
    message = message_json(new_id("msg_"), parsed.model_name, reply, usage)
    billed = {k: v for k, v in usage.to_json().items() if isinstance(v, int)}
    return Answer({"type": "succeeded", "message": message}, usage=billed)


def answer_request(state: MockState, batch: Batch, request: BatchRequest, at: float) -> Answer:
    try:
        return _answer(state, batch, request.params, at)
    except MockAPIError as exc:
        return _errored(exc)
    except Exception:
        # A bug in the mock must still look like the API: this request errored, the batch goes on.
        log.exception("mock provider failed on request %s of %s", request.custom_id, batch.id)
        return _errored(MockAPIError(500, "Internal server error"))


async def settle(state: MockState) -> None:
    """Answer every request (and end every batch) due by now on the mock's clock."""
    store = state.batches
    due = store.next_due()
    if due is None or due > state.clock.now():
        return
    async with store.lock:
        def answer(batch: Batch, request: BatchRequest, at: float) -> Answer:
            return answer_request(state, batch, request, at)

        deadline = time.perf_counter() + SLICE_SECONDS
        while store.step(state.clock.now(), answer, state.stats):
            if time.perf_counter() >= deadline:
                await asyncio.sleep(0)
                deadline = time.perf_counter() + SLICE_SECONDS


async def _run_batches(state: MockState) -> None:
    store = state.batches
    while True:
        try:
            await settle(state)
        except Exception:
            log.exception("mock provider failed while processing message batches")
        due = store.next_due()
        # Real seconds until the next event; the clock may also jump (advance) or stand still (a clock
        # driven by hand): then whoever moves it wakes us, and a wait that was too long is cut short.
        wait = None if due is None else max(0.0, due - state.clock.now())
        store.wakeup.clear()
        with suppress(TimeoutError):
            await asyncio.wait_for(store.wakeup.wait(), wait)


async def batch_worker(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: the background task that moves batches on in real time."""
    task = asyncio.create_task(_run_batches(app[STATE]), name="mock-message-batches")
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


# --- the endpoints ---------------------------------------------------------------------------------

def _base_url(request: web.Request) -> str:
    # results_url must work from wherever the client reached us (127.0.0.1, a compose service name...).
    return f"{request.scheme}://{request.host}"


def _batch_requests(body: Any, max_requests: int) -> list[BatchRequest]:
    if not isinstance(body, dict):
        raise invalid_request("Request body must be a JSON object")
    if "requests" not in body:
        raise invalid_request("requests: Field required")
    items = body["requests"]
    if not isinstance(items, list):
        raise invalid_request("requests: Input should be a valid list")
    if not items:
        raise invalid_request("requests: List should have at least 1 item after validation, not 0")
    if len(items) > max_requests:
        raise invalid_request(
            f"requests: List should have at most {max_requests} items after validation, not {len(items)}")
    seen: set[str] = set()
    requests: list[BatchRequest] = []
    for i, item in enumerate(items):
        path = f"requests.{i}"
        if not isinstance(item, dict):
            raise invalid_request(f"{path}: Input should be a valid dictionary")
        for name in ("custom_id", "params"):
            if name not in item:
                raise invalid_request(f"{path}.{name}: Field required")
        custom_id, params = item["custom_id"], item["params"]
        if not isinstance(custom_id, str):
            raise invalid_request(f"{path}.custom_id: Input should be a valid string")
        if not CUSTOM_ID.fullmatch(custom_id):
            raise invalid_request(f"{path}.custom_id: String should match pattern '{CUSTOM_ID_PATTERN}'")
        if custom_id in seen:
            raise invalid_request(
                f"{path}.custom_id: {custom_id!r} is used by another request; "
                "custom_id must be unique within a batch")
        seen.add(custom_id)
        if not isinstance(params, dict):
            raise invalid_request(f"{path}.params: Input should be a valid dictionary")
        requests.append(BatchRequest(custom_id, params))
    return requests


async def create_batch(request: web.Request) -> web.Response:
    state = request.app[STATE]
    limit = state.config.batch_max_body_bytes
    _, key, version = await open_v1(request, max_body_bytes=limit)
    requests = _batch_requests(await read_json(request, limit), state.config.batch_max_requests)
    await settle(state)  # so the new batch is scheduled behind everything already due
    config = state.config
    batch = state.batches.create(api_key=key, api_version=version, requests=requests,
                                 now=state.clock.now(), wall=state.clock.wall(),
                                 delay=config.batch_delay_ms / 1000, expire_after=config.batch_expire_after_s)
    state.stats.batches["created"] += 1
    return json_response(batch.to_json(_base_url(request)))


async def _open_batch(request: web.Request) -> tuple[MockState, str, Batch]:
    state, key, _ = await open_v1(request)
    await settle(state)
    batch_id = request.match_info["message_batch_id"]
    batch = state.batches.get(key, batch_id)
    if batch is None:
        raise MockAPIError(404, f"message_batch_id: no message batch {batch_id!r}")
    return state, key, batch


async def retrieve_batch(request: web.Request) -> web.Response:
    _, _, batch = await _open_batch(request)
    return json_response(batch.to_json(_base_url(request)))


async def list_batches(request: web.Request) -> web.Response:
    state, key, _ = await open_v1(request)
    await settle(state)
    batches = state.batches.newest_first(key)
    ids = [b.id for b in batches]

    def position(batch_id: str, parameter: str) -> int:
        if batch_id not in ids:
            raise invalid_request(f"{parameter}: no message batch {batch_id!r}")
        return ids.index(batch_id)

    page, has_more = paginate(batches, request.query, position)
    base_url = _base_url(request)
    return json_response({
        "data": [b.to_json(base_url) for b in page],
        "has_more": has_more,
        "first_id": page[0].id if page else None,
        "last_id": page[-1].id if page else None,
    })


async def cancel_batch(request: web.Request) -> web.Response:
    state, _, batch = await _open_batch(request)
    if batch.status == "ended":
        raise invalid_request(f"message batch {batch.id} has already ended and can no longer be canceled")
    if batch.status == "in_progress":
        state.batches.cancel(batch, state.clock.now())
        state.stats.batches["canceled"] += 1
    return json_response(batch.to_json(_base_url(request)))


async def delete_batch(request: web.Request) -> web.Response:
    state, _, batch = await _open_batch(request)
    if batch.status != "ended":
        raise invalid_request(f"message batch {batch.id} cannot be deleted while it is {batch.status}; "
                              "cancel it and wait until processing has ended")
    state.batches.delete(batch)
    state.stats.batches["deleted"] += 1
    return json_response({"id": batch.id, "type": "message_batch_deleted"})


async def batch_results(request: web.Request) -> web.StreamResponse:
    state, _, batch = await _open_batch(request)
    if batch.status != "ended":
        raise invalid_request(f"message batch {batch.id} is still {batch.status}; its results are "
                              "available once processing has ended (results_url is set then)")
    response = web.StreamResponse(headers={
        "content-type": "application/x-jsonl",
        "content-disposition": f"attachment; filename*=utf-8''{batch.id}_results.jsonl",
        **common_headers(state, request, request[RECORD]),
    })
    await response.prepare(request)
    chunk: list[bytes] = []
    size = 0
    for line in batch.results:
        chunk.append(line)
        size += len(line)
        if size >= RESULTS_CHUNK_BYTES:
            await response.write(b"".join(chunk))
            chunk, size = [], 0
    if chunk:
        await response.write(b"".join(chunk))
    await response.write_eof()
    return response


def add_batch_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages/batches", create_batch)
    app.router.add_get("/v1/messages/batches", list_batches)
    app.router.add_get("/v1/messages/batches/{message_batch_id}", retrieve_batch)
    app.router.add_delete("/v1/messages/batches/{message_batch_id}", delete_batch)
    app.router.add_post("/v1/messages/batches/{message_batch_id}/cancel", cancel_batch)
    app.router.add_get("/v1/messages/batches/{message_batch_id}/results", batch_results)
    app.cleanup_ctx.append(batch_worker)
