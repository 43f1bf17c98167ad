"""When a block moves on to the run's next model (issue 22), decided without a database."""

import uuid
from datetime import UTC, datetime, timedelta

from apps.providers.errors import FailureKind, ProviderFailure
from apps.runs.models import Block, Run
from apps.runs.services.decisions import Outcome, decide

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def run(**fields) -> Run:
    fields.setdefault("fallback_models", ["claude-sonnet-4-6"])
    return Run(model="claude-haiku-4-5", max_attempts=3, status="running", **fields)


def outcome(
    kind: FailureKind,
    code: str,
    *,
    http_status: int | None = None,
    message: str = "no",
    attempt: int = 1,
    batch_id: int | None = None,
) -> Outcome:
    return Outcome(
        block_id=1,
        lease_token=uuid.uuid4(),
        attempt=attempt,
        batch_id=batch_id,
        failure=ProviderFailure(kind, code, message, http_status=http_status),
    )


NOT_FOUND = (FailureKind.BLOCK_FATAL, "not_found_error")


def test_a_model_not_found_moves_the_block_to_the_next_model_with_its_attempts_afresh():
    decision = decide(outcome(*NOT_FOUND, http_status=404), Block(attempts=2), run(), NOW)
    assert (decision.status, decision.model_index, decision.next_attempt_at) == ("pending", 1, NOW)
    assert "moved to claude-sonnet-4-6" in decision.error_message


def test_a_permission_error_about_the_model_moves_it_but_one_about_the_key_does_not():
    about_model = outcome(
        FailureKind.KEY_INVALID,
        "permission_error",
        http_status=403,
        message="model: claude-haiku-4-5 is not enabled for this organization",
    )
    assert decide(about_model, Block(), run(), NOW).model_index == 1
    about_key = outcome(
        FailureKind.KEY_INVALID,
        "permission_error",
        http_status=403,
        message="your API key does not have permission",
    )
    assert decide(about_key, Block(), run(), NOW).model_index is None


def test_the_last_model_has_nowhere_to_go_and_fails_as_before():
    decision = decide(outcome(*NOT_FOUND, http_status=404), Block(model_index=1), run(), NOW)
    assert (decision.status, decision.model_index) == ("failed", None)


def test_batch_mode_never_falls_back():
    decision = decide(outcome(*NOT_FOUND, http_status=404, batch_id=7), Block(), run(), NOW)
    assert (decision.status, decision.model_index) == ("failed", None)


def test_overload_moves_the_block_only_past_the_runs_allowance():
    overloaded = outcome(FailureKind.OVERLOADED, "overloaded_error", http_status=529)
    a_run = run(options={"fallback_overload_seconds": 60})
    first = decide(overloaded, Block(), a_run, NOW)
    assert (first.status, first.overloaded, first.model_index) == ("pending", True, None)
    soon = decide(overloaded, Block(overloaded_since=NOW - timedelta(seconds=30)), a_run, NOW)
    assert soon.model_index is None
    late = decide(overloaded, Block(overloaded_since=NOW - timedelta(seconds=61)), a_run, NOW)
    assert (late.status, late.model_index) == ("pending", 1)


def test_invalid_output_on_every_attempt_moves_the_block_only_when_the_run_asks():
    refused = outcome(FailureKind.OUTPUT_INVALID, "output_invalid", attempt=3)
    assert decide(refused, Block(), run(), NOW).status == "failed"
    opted_in = run(options={"fallback_on_invalid_output": True})
    assert decide(refused, Block(), opted_in, NOW).model_index == 1
    early = outcome(FailureKind.OUTPUT_INVALID, "output_invalid", attempt=1)
    assert decide(early, Block(), opted_in, NOW).model_index is None


def test_a_block_out_of_overload_waits_moves_on_rather_than_failing(settings):
    settings.CONVEYOR = {**settings.CONVEYOR, "MAX_THROTTLE_WAITS": 3}
    overloaded = outcome(FailureKind.OVERLOADED, "overloaded_error", http_status=529)
    decision = decide(overloaded, Block(throttle_waits=3, overloaded_since=NOW), run(), NOW)
    assert (decision.status, decision.model_index) == ("pending", 1)
