"""What a finished call does to its block, decided without a database: by the failure's class, the
block's attempts and throttle waits, and whether its run is being canceled."""

import uuid
from datetime import UTC, datetime

import pytest

from apps.failures.models import EventCode
from apps.providers.errors import FailureKind, ProviderFailure
from apps.runs.models import Block, PausedCause, Run
from apps.runs.services.decisions import (
    KEY_EVENT_CODES,
    KEY_PAUSE_CAUSES,
    Decision,
    Outcome,
    decide,
    fenced_out,
    overload_delay,
    retry_delay,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def knobs(settings):
    settings.CONVEYOR = {**settings.CONVEYOR, "RETRY_BASE_SECONDS": 2.0, "RETRY_MAX_SECONDS": 300.0,
                         "OVERLOAD_BACKOFF_BASE_SECONDS": 0.5, "OVERLOAD_BACKOFF_MAX_SECONDS": 30.0,
                         "THROTTLE_DEFAULT_SECONDS": 10.0, "MAX_THROTTLE_WAITS": 3}


def outcome(kind: FailureKind | None = None, *, attempt: int = 1, code: str = "boom",
            retry_after: float | None = None) -> Outcome:
    failure = None if kind is None else ProviderFailure(kind, code, "it broke", retry_after=retry_after)
    return Outcome(block_id=1, lease_token=uuid.uuid4(), attempt=attempt,
                   output="ok" if kind is None else None, failure=failure)


def decided(kind: FailureKind | None = None, *, attempt: int = 1, throttle_waits: int = 0,
            run_status: str = "running", retry_after: float | None = None) -> Decision:
    return decide(outcome(kind, attempt=attempt, retry_after=retry_after),
                  Block(throttle_waits=throttle_waits), Run(max_attempts=3, status=run_status), NOW)


def waited(decision: Decision) -> float:
    assert decision.next_attempt_at is not None
    return (decision.next_attempt_at - NOW).total_seconds()


def test_a_success_succeeds():
    assert decided() == Decision("succeeded", "succeeded")


def test_a_retryable_error_with_attempts_left_waits_its_backoff_and_uses_the_attempt():
    decision = decided(FailureKind.RETRYABLE, attempt=2)
    assert (decision.status, decision.attempt_outcome, decision.refund_attempt) == ("pending", "retry", False)
    assert 2.0 <= waited(decision) <= 4.0  # 2 s * 2**(2-1), half of it random
    assert (decision.error_code, decision.error_message) == ("boom", "it broke")


def test_a_retryable_error_on_the_last_attempt_fails_the_block_saying_it_gave_up():
    decision = decided(FailureKind.RETRYABLE, attempt=3)
    assert (decision.status, decision.attempt_outcome) == ("failed", "failed")
    assert decision.error_message == "gave up after 3 attempts: it broke"


def test_a_throttled_call_waits_for_retry_after_and_gives_its_attempt_back():
    decision = decided(FailureKind.THROTTLED, retry_after=7.0)
    assert (decision.status, decision.attempt_outcome) == ("pending", "throttled")
    assert (decision.refund_attempt, decision.throttle_wait, waited(decision)) == (True, True, 7.0)


def test_a_throttled_call_without_retry_after_waits_the_default():
    assert waited(decided(FailureKind.THROTTLED)) == 10.0


def test_an_overloaded_call_backs_off_by_its_own_waits_and_gives_its_attempt_back():
    decision = decided(FailureKind.OVERLOADED, throttle_waits=2)
    assert (decision.status, decision.refund_attempt, decision.throttle_wait) == ("pending", True, True)
    assert 1.0 <= waited(decision) <= 2.0  # 0.5 s * 2**2, half of it random


def test_a_block_throttled_past_the_bound_fails_as_throttle_exhausted():
    decision = decided(FailureKind.OVERLOADED, throttle_waits=3)
    assert (decision.status, decision.error_code) == ("failed", "throttle_exhausted")
    assert decision.error_message == "gave up after 4 throttled calls: boom: it broke"


@pytest.mark.parametrize("kind", [FailureKind.KEY_INVALID, FailureKind.KEY_BLOCKED, FailureKind.KEY_UNSAFE])
def test_a_key_failure_leaves_the_block_due_at_once_with_its_attempt_given_back(kind):
    decision = decided(kind)
    assert (decision.status, decision.attempt_outcome, decision.refund_attempt) == (
        "pending", "key_rejected", True)
    assert (waited(decision), decision.throttle_wait) == (0.0, False)


@pytest.mark.parametrize("kind", [FailureKind.BLOCK_FATAL, FailureKind.OUTPUT_PROBLEM])
def test_a_failure_of_the_block_itself_fails_it_at_once(kind):
    decision = decided(kind, attempt=1)
    assert (decision.status, decision.error_code, decision.next_attempt_at) == ("failed", "boom", None)


@pytest.mark.parametrize("kind", [FailureKind.RETRYABLE, FailureKind.THROTTLED, FailureKind.KEY_INVALID])
def test_in_a_canceling_run_a_block_that_would_wait_is_canceled(kind):
    decision = decided(kind, run_status="canceling")
    assert (decision.status, decision.refund_attempt) == ("canceled", kind != FailureKind.RETRYABLE)


def test_in_a_canceling_run_a_success_still_succeeds_and_a_fatal_error_still_fails():
    assert decided(run_status="canceling").status == "succeeded"
    assert decided(FailureKind.BLOCK_FATAL, run_status="canceling").status == "failed"


@pytest.mark.parametrize(("kind", "attempt_outcome"), [
    (None, "succeeded"), (FailureKind.THROTTLED, "throttled"), (FailureKind.OVERLOADED, "throttled"),
    (FailureKind.KEY_BLOCKED, "key_rejected"), (FailureKind.RETRYABLE, "retry"),
    (FailureKind.BLOCK_FATAL, "failed"),
])
def test_a_call_fenced_out_moves_nothing_and_its_attempt_says_what_the_call_was(kind, attempt_outcome):
    decision = fenced_out(outcome(kind))
    assert (decision.status, decision.attempt_outcome) == ("claimed", attempt_outcome)


def test_retries_back_off_exponentially_up_to_the_cap_never_sooner_than_retry_after():
    assert all(1.0 <= retry_delay(1) <= 2.0 for _ in range(50))
    assert all(150.0 <= retry_delay(20) <= 300.0 for _ in range(50))
    assert retry_delay(1, retry_after=60.0) == 60.0


def test_overload_back_off_grows_with_the_waits_and_stops_growing_at_the_cap():
    assert all(0.25 <= overload_delay(0) <= 0.5 for _ in range(50))
    assert all(15.0 <= overload_delay(10) <= 30.0 for _ in range(50))
    assert overload_delay(0, retry_after=5.0) == 5.0


def test_each_key_failure_pauses_for_its_cause_and_is_logged_under_its_code():
    assert KEY_PAUSE_CAUSES == {FailureKind.KEY_INVALID: PausedCause.KEY_REJECTED,
                                FailureKind.KEY_BLOCKED: PausedCause.KEY_BLOCKED,
                                FailureKind.KEY_UNSAFE: PausedCause.KEY_UNSAFE}
    assert KEY_EVENT_CODES == {FailureKind.KEY_INVALID: EventCode.AUTH_FAILED,
                               FailureKind.KEY_BLOCKED: EventCode.AUTH_FAILED,
                               FailureKind.KEY_UNSAFE: EventCode.DOWNSTREAM_CALL_FAILED}
