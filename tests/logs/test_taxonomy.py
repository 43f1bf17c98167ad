"""The diagnostic taxonomy where it happens: a failed result write is DB_WRITE_FAILED, a refused key
AUTH_FAILED, each as a diagnostic_logs row and as a log line with the call's context."""

import logging

import pytest
from django.db import connection

from apps.failures.models import DiagnosticLog
from apps.runs.serving import calls
from tests.factories import SECRET, make_key, make_run
from tests.keys.conftest import PROXY_SECRET
from tests.runs.helpers import serve, serve_until_settled

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent_correlation_ids(monkeypatch) -> list[str]:
    """The x-conveyor-correlation-id of every call the engine sends (the real call is made)."""
    sent: list[str] = []
    real = calls.call_messages

    async def spy(client, params, **options):
        sent.append(options["headers"]["x-conveyor-correlation-id"])
        return await real(client, params, **options)

    monkeypatch.setattr(calls, "call_messages", spy)
    return sent


@pytest.fixture
def results_cannot_be_written():
    """PostgreSQL refuses every successful result write to the blocks table (a real error from
    the database, raised inside the engine's own UPDATE)."""
    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE FUNCTION refuse_results() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'disk full (test)'; END $$;
            CREATE TRIGGER refuse_results BEFORE UPDATE ON runs_block FOR EACH ROW
            WHEN (NEW.status = 'succeeded') EXECUTE FUNCTION refuse_results();
        """)
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER refuse_results ON runs_block; DROP FUNCTION refuse_results();")


def test_a_result_write_that_fails_is_db_write_failed_in_the_log_and_the_diagnostics(
        owner, mock_key, results_cannot_be_written, console, sent_correlation_ids):
    run = make_run(owner, mock_key, ["an essay"])
    serve()
    rows = list(DiagnosticLog.objects.filter(event_code="DB_WRITE_FAILED", run=run).order_by("id"))
    assert [row.metadata["tries"] for row in rows] == [1, 2, 3]
    assert [row.metadata["gave_up"] for row in rows] == [False, False, True]
    assert "disk full (test)" in rows[-1].message
    assert rows[-1].metadata["correlation_ids"] == sent_correlation_ids
    lines = console.with_code("DB_WRITE_FAILED")
    assert len(lines) == 3
    assert lines[-1]["level"] == "ERROR"
    assert (lines[-1]["run_id"], lines[-1]["key_id"]) == (str(run.pk), mock_key.pk)
    assert "disk full (test)" in lines[-1]["exc_info"]
    # Nothing was written: the block waits, claimed, for its lease to expire.
    assert run.blocks.get().status == "claimed"


def test_a_401_is_auth_failed_with_the_rejected_call_in_the_log_and_the_diagnostics(
        owner, mock_key, console, sent_correlation_ids):
    run = serve_until_settled(make_run(owner, mock_key, ["rejected [[mock:status=401]]", "x"],
                                       parallelism=1))
    assert run.status == "paused"
    row = DiagnosticLog.objects.get(event_code="AUTH_FAILED", run=run)
    assert row.block.uid == "b0"
    assert (row.log_level, row.metadata["http_status"], row.metadata["key_id"]) == ("ERROR", 401, mock_key.pk)
    assert "paused" in row.message
    line = console.with_code("AUTH_FAILED")[-1]
    assert (line["run_id"], line["key_id"], line["block_uid"], line["attempt"]) == (
        str(run.pk), mock_key.pk, "b0", 1)
    assert line["correlation_id"] == sent_correlation_ids[0] == f"{run.pk}:b0:1"
    assert SECRET not in console.text


def test_a_retry_is_logged_with_the_correlation_id_sent_to_the_provider(
        owner, mock_key, console, sent_correlation_ids):
    run = serve_until_settled(make_run(owner, mock_key, ["flaky [[mock:status=500 times=1]]"]))
    assert run.status == "complete"
    line = console.with_code("PIPELINE_RETRY")[-1]
    assert (line["run_id"], line["block_uid"], line["attempt"], line["key_id"]) == (
        str(run.pk), "b0", 1, mock_key.pk)
    assert line["correlation_id"] == sent_correlation_ids[0]
    assert sent_correlation_ids == [f"{run.pk}:b0:1", f"{run.pk}:b0:2"]


def test_no_line_of_a_run_contains_the_key_secret_even_when_the_provider_quotes_it(
        owner, echoing_provider, console, caplog):
    caplog.set_level(logging.DEBUG)  # every logger's every line, the SDK's and the HTTP client's too
    key = make_key(owner, base_url=echoing_provider.base_url, secret=PROXY_SECRET, label="proxy")
    run = serve_until_settled(make_run(owner, key, ["an essay"]))
    assert echoing_provider.seen_keys == [PROXY_SECRET]  # it was sent, and quoted back in the 401
    assert run.status == "paused"
    assert console.with_code("AUTH_FAILED")  # the refusal, with the provider's message, was logged...
    assert PROXY_SECRET not in console.text  # ...without the secret
