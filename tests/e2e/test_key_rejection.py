import pytest

from apps.keys.services import key_update
from apps.runs.models import Attempt
from tests.e2e.conftest import run_status, wait_for
from tests.factories import SECRET, make_run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NEW_SECRET = "sk-ant-mock-rotated"


def test_a_401_mid_run_pauses_the_run_and_the_fixed_key_resumes_it_to_completion(
    owner, e2e_key, mock_process, stack
):
    mock_process.configure(latency_ms=100)
    stack.worker("w1")
    stack.beat()
    run = make_run(owner, e2e_key, [f"essay {i}" for i in range(200)], parallelism=4)
    wait_for(lambda: run_status(run) == "running" and run.completed_blocks >= 10, timeout=60,
             what="some progress", stack=stack)

    mock_process.configure(api_keys=[NEW_SECRET])  # the provider revokes the old secret
    # The run pauses in its result transaction; the key is marked invalid just after it commits
    # (key rows are locked after run rows, never inside them).
    wait_for(lambda: run_status(run) == "paused" and key_is_invalid(e2e_key), timeout=30,
             what="the run to pause and its key to be marked invalid", stack=stack)
    assert "authentication_error" in run.paused_reason
    assert SECRET not in run.paused_reason + e2e_key.validation_error

    key_update(key=e2e_key, secret=NEW_SECRET)  # validation is queued on commit, to a worker

    wait_for(lambda: run_status(run) == "complete", timeout=90, what="the run to resume and end",
             stack=stack)
    e2e_key.refresh_from_db()
    assert e2e_key.is_valid is True
    assert (run.completed_blocks, run.failed_blocks) == (200, 0)
    assert Attempt.objects.filter(run=run, outcome="key_rejected").exists()


def key_is_invalid(key) -> bool:
    key.refresh_from_db()
    return key.is_valid is False
