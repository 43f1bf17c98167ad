"""The control API for tests and users: `/_mock/stats`, `/_mock/reset`, `/_mock/config`, `/_mock/clock`.

Not under /v1 and without an API key, so it can never be mistaken for (or collide with) the API itself.
"""

import json
from typing import Any

from aiohttp import web

from mock_provider.app import CONTROL_PREFIX, STATE, json_response
from mock_provider.batch_api import settle
from mock_provider.errors import invalid_request


async def _control_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise invalid_request(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid_request("body must be a JSON object")
    return body


async def control_stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    limit = request.query.get("limit")
    data = state.stats.to_json(int(limit) if limit and limit.isdigit() else None)
    data.update(cache_entries=len(state.cache), batches_stored=len(state.batches),
                clock_offset=state.clock.offset,
                config=state.config.to_json())
    return json_response(data)


async def control_reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return json_response({"reset": True})


async def control_config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.method == "POST":
        try:
            state.configure(await _control_body(request))
        except (TypeError, ValueError) as exc:
            raise invalid_request(str(exc)) from None
    return json_response(state.config.to_json())


async def control_clock(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await _control_body(request)
    try:
        state.clock.advance(float(body.get("advance", 0)))
    except (TypeError, ValueError) as exc:
        raise invalid_request(f"advance: {exc}") from None
    # Answer the batch requests now due before returning, so whatever the caller reads next already
    # reflects the new time; and let the background task recompute its next wake-up.
    await settle(state)
    state.batches.wakeup.set()
    return json_response({"offset": state.clock.offset, "now": state.clock.now()})


def add_control_routes(app: web.Application) -> None:
    app.router.add_get(CONTROL_PREFIX + "stats", control_stats)
    app.router.add_post(CONTROL_PREFIX + "reset", control_reset)
    app.router.add_get(CONTROL_PREFIX + "config", control_config)
    app.router.add_post(CONTROL_PREFIX + "config", control_config)
    app.router.add_post(CONTROL_PREFIX + "clock", control_clock)
