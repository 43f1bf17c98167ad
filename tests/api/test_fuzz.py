"""Schemathesis against the runs API, through WSGI: whatever it sends (valid or not, per the schema),
the API answers without a server error."""

from collections.abc import Callable, Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from apps.accounts.services import token_create
from config.wsgi import application
from tests.factories import MODEL

FUZZ = settings(max_examples=15, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


# Loaded when the module is collected (serving the schema needs no database). Not through
# schemathesis.pytest.from_fixture: its lazy loader breaks on pytest 9 (it sets Node._nodeid).
schema = schemathesis.openapi.from_wsgi("/api/schema/", application).include(path_regex=r"^/api/v1/runs/")


@pytest.fixture(autouse=True)
def keep_the_test_connection() -> Iterator[None]:
    """Django closes the connection at the end of each request; Django's test client stops it doing
    so (the test's transaction lives on that connection), and so must this WSGI client."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def short_event_streams(settings) -> None:
    """runs/{id}/events/ streams until its run ends, which a fuzzed run never does: a tenth of a
    second per stream, so the fuzzing reads each stream to its close (and its `retry:` hint)."""
    settings.RUN_EVENTS = {**settings.RUN_EVENTS, "MAX_SECONDS": 0.1}


@pytest.fixture
def as_owner(owner, settings) -> dict[str, str]:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"uploads": "100000/min", "writes": "100000/min"}}
    return {"Authorization": f"Token {token_create(user=owner).token}"}


@pytest.fixture
def aim(run) -> Callable[[schemathesis.Case], None]:
    """Point a case at the owner's run, and a create at the owner's key and a real model, so that the
    fuzzing gets past the 404s and the unknown key into the code behind them."""
    def aim_case(case: schemathesis.Case) -> None:
        if case.path_parameters and "run_id" in case.path_parameters:
            case.path_parameters = {**case.path_parameters, "run_id": str(run.pk)}
        if case.operation.path == "/api/v1/runs/" and isinstance(case.body, dict):
            case.body = {**case.body, "key": run.key_id, "model": MODEL}
            # Hypothesis favours one Idempotency-Key; with it, every create after the first is a replay.
            case.headers = {k: v for k, v in (case.headers or {}).items() if k != "Idempotency-Key"}
    return aim_case


@schema.parametrize()
@FUZZ
def test_no_request_makes_the_api_fail(case, as_owner):
    case.call_and_validate(headers=as_owner, checks=[not_a_server_error])


@schema.parametrize()
@FUZZ
def test_no_request_about_an_existing_run_or_key_makes_the_api_fail(case, as_owner, aim):
    aim(case)
    case.call_and_validate(headers=as_owner, checks=[not_a_server_error])
