"""Validation: one real call through the SDK to the (mock) provider, recorded on the key."""

import pytest

from apps.core import addresses
from apps.keys.models import ProviderKey
from apps.keys.services import (
    KeyValidationInconclusive,
    key_mark_invalid,
    key_update,
    key_validate,
)
from apps.keys.tasks import validate_key
from apps.runs.models import PausedCause, Run, RunStatus
from tests.keys.conftest import GOOD_SECRET

BAD_SECRET = "sk-ant-fake.Revoked0000000000000000000000000"


def paused_run(key: ProviderKey) -> Run:
    """A run the engine paused because the provider rejected its key."""
    return Run.objects.create(owner=key.owner, key=key, model="claude-haiku-4-5", pipeline_version="1",
                              prompt_version="x", status=RunStatus.PAUSED,
                              paused_cause=PausedCause.KEY_REJECTED,
                              paused_reason="provider refused the key: authentication_error: bad key")


def test_a_good_key_validates_against_the_mock(owner, make_key, mock_provider):
    key = make_key(owner, base_url=mock_provider.base_url)
    key_validate(key=key)
    key.refresh_from_db()
    assert (key.is_valid, key.validation_error) == (True, "")
    assert key.validated_at is not None


def test_validation_makes_one_count_tokens_call(owner, make_key, mock_provider):
    key_validate(key=make_key(owner, base_url=mock_provider.base_url))
    assert mock_provider.stats()["by_path"] == {"/v1/messages/count_tokens": 1}


def test_an_invalid_key_fails_validation_with_the_providers_message(owner, make_key, mock_provider):
    key = make_key(owner, secret=BAD_SECRET, base_url=mock_provider.base_url)
    key_validate(key=key)
    key.refresh_from_db()
    assert key.is_valid is False
    assert key.validation_error == "authentication_error: invalid x-api-key"


def test_a_successful_validation_resumes_the_runs_paused_for_the_key(owner, make_key, mock_provider):
    key = make_key(owner, base_url=mock_provider.base_url)
    run = paused_run(key)
    key_validate(key=key)
    run.refresh_from_db()
    assert (run.status, run.paused_reason) == (RunStatus.RUNNING, "")


def test_a_failed_validation_leaves_the_runs_paused(owner, make_key, mock_provider):
    key = make_key(owner, secret=BAD_SECRET, base_url=mock_provider.base_url)
    run = paused_run(key)
    key_validate(key=key)
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED


def test_a_verdict_about_a_replaced_secret_is_dropped(owner, make_key, mock_provider):
    stale = make_key(owner, secret=BAD_SECRET, base_url=mock_provider.base_url)
    key_update(key=stale, secret=GOOD_SECRET)
    key_validate(key=stale)  # still holds the old revision and the bad secret
    fresh = ProviderKey.objects.get(pk=stale.pk)
    assert (fresh.is_valid, fresh.validation_error) == (None, "")


def test_an_overloaded_provider_keeps_the_last_verdict_and_asks_for_a_retry(
        owner, make_key, echoing_provider):
    echoing_provider.status, echoing_provider.error_type = 529, "overloaded_error"
    key = make_key(owner, base_url=echoing_provider.base_url)
    ProviderKey.objects.filter(pk=key.pk).update(is_valid=True)
    with pytest.raises(KeyValidationInconclusive):
        key_validate(key=key)
    key.refresh_from_db()
    assert key.is_valid is True
    assert key.validation_error.startswith("overloaded_error")


def test_a_base_url_that_turned_private_fails_validation_without_a_call(owner, make_key, settings):
    key = make_key(owner, base_url="http://127.0.0.1:9")
    settings.PROVIDER_HOST_ALLOWLIST = []
    key_validate(key=key)
    key.refresh_from_db()
    assert key.is_valid is False
    assert key.validation_error.startswith("base_url:")


def test_the_task_validates_the_key_by_id(owner, make_key, mock_provider):
    key = make_key(owner, base_url=mock_provider.base_url)
    validate_key(key.pk)
    key.refresh_from_db()
    assert key.is_valid is True


def test_the_task_returns_quietly_for_a_deleted_key(owner, make_key):
    key = make_key(owner)
    key_id = key.pk
    key.delete()
    validate_key(key_id)  # no exception, no call


def test_a_new_key_is_validated_after_commit(owner, make_key, mock_provider, eager_celery,
                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        key = make_key(owner, base_url=mock_provider.base_url)
    key.refresh_from_db()
    assert key.is_valid is True


def test_a_new_secret_is_validated_again_after_commit(owner, make_key, mock_provider,
                                                      eager_celery, django_capture_on_commit_callbacks):
    key = make_key(owner, base_url=mock_provider.base_url)
    key_validate(key=key)
    with django_capture_on_commit_callbacks(execute=True):
        key_update(key=key, secret=BAD_SECRET)
    key.refresh_from_db()
    assert key.is_valid is False


def test_a_new_base_url_resets_the_verdict(owner, make_key, mock_provider):
    key = make_key(owner, base_url=mock_provider.base_url)
    key_validate(key=key)
    key = key_update(key=key, base_url="http://localhost:1", secret=GOOD_SECRET)
    assert (key.is_valid, key.validated_at) == (None, None)


def test_a_label_change_keeps_the_verdict_and_queues_nothing(owner, make_key, mock_provider,
                                                             django_capture_on_commit_callbacks):
    key = make_key(owner, base_url=mock_provider.base_url)
    key_validate(key=key)
    with django_capture_on_commit_callbacks() as callbacks:
        key = key_update(key=key, label="Renamed")
    assert callbacks == []
    assert key.is_valid is True


def test_a_provider_rejection_during_a_run_marks_the_key_invalid(owner, make_key):
    key = make_key(owner)
    assert key_mark_invalid(key_id=key.pk, error="authentication_error: invalid x-api-key")
    key.refresh_from_db()
    assert (key.is_valid, key.validation_error) == (False, "authentication_error: invalid x-api-key")


def test_a_rejection_of_a_replaced_secret_is_ignored(owner, make_key):
    key = make_key(owner)
    old_revision = key.revision
    key_update(key=key, secret=BAD_SECRET)
    assert not key_mark_invalid(key_id=key.pk, error="authentication_error: x", revision=old_revision)
    key.refresh_from_db()
    assert key.is_valid is None


def test_a_host_that_stopped_resolving_is_inconclusive_not_invalid(owner, make_key, monkeypatch):
    monkeypatch.setattr(addresses, "_resolve", lambda host, port: ["93.184.215.14"])
    key = make_key(owner, base_url="https://proxy.example.com")

    def fail(host: str, port: int) -> list[str]:
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(addresses, "_resolve", fail)
    with pytest.raises(KeyValidationInconclusive):
        key_validate(key=key)
    key.refresh_from_db()
    assert key.is_valid is None
    assert "does not resolve" in key.validation_error
