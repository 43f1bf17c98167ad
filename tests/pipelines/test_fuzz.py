"""Schemathesis against the pipelines API, through WSGI: whatever it sends (valid or not, per the
schema), the API answers without a server error; also about an existing pipeline and its steps."""

from collections.abc import Callable

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error

from apps.pipelines.services.creation import pipeline_create
from config.wsgi import application
from tests.api.test_fuzz import FUZZ, as_owner, keep_the_test_connection  # noqa: F401 (fixtures)
from tests.factories import MODEL
from tests.pipelines.helpers import items

schema = schemathesis.openapi.from_wsgi("/api/schema/", application).include(
    path_regex=r"^/api/v1/pipelines/"
)


@pytest.fixture
def aim(owner, offline_key) -> Callable[[schemathesis.Case], None]:
    """Point a case at the owner's pipeline and its step, and a create at the owner's key and a real
    model, so that the fuzzing gets past the 404s into the code behind them."""
    pipeline = pipeline_create(
        owner=owner,
        key=offline_key,
        name="fuzzed",
        items=items({"a": "one"}),
        steps=[
            {"name": "draft", "model": MODEL},
            {"name": "polish", "model": MODEL, "input": "{steps.draft.output}"},
        ],
    )

    def aim_case(case: schemathesis.Case) -> None:
        if case.path_parameters and "pipeline_id" in case.path_parameters:
            case.path_parameters = {**case.path_parameters, "pipeline_id": str(pipeline.pk)}
        if case.path_parameters and "step" in case.path_parameters:
            case.path_parameters = {**case.path_parameters, "step": "draft"}
        if case.operation.path == "/api/v1/pipelines/" and isinstance(case.body, dict):
            case.body = {**case.body, "key": offline_key.pk}

    return aim_case


@schema.parametrize()
@FUZZ
def test_no_request_makes_the_pipelines_api_fail(case, as_owner):  # noqa: F811
    case.call_and_validate(headers=as_owner, checks=[not_a_server_error])


@schema.parametrize()
@FUZZ
def test_no_request_about_an_existing_pipeline_makes_the_api_fail(case, as_owner, aim):  # noqa: F811
    aim(case)
    case.call_and_validate(headers=as_owner, checks=[not_a_server_error])
