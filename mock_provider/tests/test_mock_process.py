"""The mock as its own process, as Celery workers in other processes and users see it."""

from datetime import timedelta

import anthropic
import pytest

from mock_provider.testing import running_mock_process
from mock_provider.tests.conftest import MODEL


@pytest.mark.parametrize("manage_py", [False, True], ids=["python -m mock_provider", "manage.py"])
def test_the_command_serves_the_sdk_with_its_flags_and_stops_cleanly(manage_py: bool) -> None:
    with running_mock_process(manage_py=manage_py, api_keys=["sk-proc"], rpm=9,
                              fault_rates={"529": 0.0}) as mock:
        client = anthropic.Anthropic(api_key="sk-proc", base_url=mock.base_url, max_retries=0)
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "from another process"}])
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(api_key="sk-other", base_url=mock.base_url, max_retries=0).models.list()
        mock.advance(10)
        stats = mock.stats()

    assert raw.parse().content[0].text.startswith("Reply ")
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "9"
    assert stats["by_status"] == {"200": 1, "401": 1}
    assert stats["clock_offset"] == 10
    assert mock.process is not None and mock.process.returncode == 0


@pytest.mark.parametrize("manage_py", [False, True], ids=["python -m mock_provider", "manage.py"])
def test_the_command_takes_the_batch_flags(manage_py: bool) -> None:
    with running_mock_process(manage_py=manage_py, batch_delay_ms=600_000, batch_expire_after_s=900,
                              batch_max_requests=2, batch_max_body_bytes=50_000) as mock:
        client = anthropic.Anthropic(api_key="sk-proc", base_url=mock.base_url, max_retries=0)
        request = {"custom_id": "a", "params": {"model": MODEL, "max_tokens": 20,
                                                "messages": [{"role": "user", "content": "batched"}]}}
        with pytest.raises(anthropic.BadRequestError):
            client.messages.batches.create(requests=[request, {**request, "custom_id": "b"},
                                                     {**request, "custom_id": "c"}])
        with pytest.raises(anthropic.RequestTooLargeError):
            client.messages.batches.create(requests=[{**request, "custom_id": "x" * 60_000}])
        batch = client.messages.batches.create(requests=[request])
        mock.advance(599)
        waiting = client.messages.batches.retrieve(batch.id)
        mock.advance(2)
        ended = client.messages.batches.retrieve(batch.id)
        config = mock.stats()["config"]

    assert waiting.processing_status == "in_progress" and ended.processing_status == "ended"
    assert ended.expires_at - ended.created_at == timedelta(seconds=900)
    assert (config["batch_delay_ms"], config["batch_max_requests"]) == (600_000, 2)
