"""The mock's aiohttp application: the API under /v1, the control API under /_mock/."""

from aiohttp import web

from mock_provider.app import STATE, count_tokens, create_message, envelope, get_model, list_models
from mock_provider.batch_api import add_batch_routes
from mock_provider.control import add_control_routes
from mock_provider.state import MockState


def create_app(state: MockState) -> web.Application:
    # Bodies are read and size-checked by the handlers against the (runtime-configurable) limit.
    app = web.Application(middlewares=[envelope], client_max_size=0)
    app[STATE] = state
    app.router.add_post("/v1/messages", create_message)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model_id}", get_model)
    add_batch_routes(app)
    add_control_routes(app)
    return app
