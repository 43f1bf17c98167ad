"""Failures and the diagnostic log in the operator's console: replay now and resolve with a note, one by
one and in bulk, through the same services as the API; the unresolved count on the index."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from apps.failures.models import DiagnosticLog, PipelineFailure
from apps.runs.models import Block
from tests.failures.helpers import active_run, counts, failure_of, settle

pytestmark = pytest.mark.django_db

FAILURES = reverse("admin:failures_pipelinefailure_changelist")
DIAGNOSTICS = reverse("admin:failures_diagnosticlog_changelist")


@pytest.fixture
def run(owner, offline_key):
    """b0 succeeded; b1 and b2 failed for good; the run is still at work."""
    return settle(active_run(owner, offline_key, ["a", "b", "c"], max_attempts=1), fail={"b1", "b2"})


@pytest.fixture
def failure(run) -> PipelineFailure:
    return failure_of(run, "b1")


def change_url(row) -> str:
    return reverse("admin:failures_pipelinefailure_change", args=[row.pk])


def act(client, action: str, rows, **extra):
    return client.post(FAILURES, {"action": action, "_selected_action": [r.pk for r in rows], **extra})


# --- pages ----------------------------------------------------------------------------------------------

def test_the_failure_list_shows_every_failure(operator, run):
    response = operator.get(FAILURES)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 2


def test_the_failure_list_filters_unresolved_and_parked(operator, run, failure):
    PipelineFailure.objects.filter(pk=failure.pk).update(next_retry_at=None)
    response = operator.get(FAILURES, {"state": "parked", "error_code": "api_error"})
    assert [row.pk for row in response.context["cl"].result_list] == [failure.pk]


def test_the_failure_list_speaks_the_same_state_words_as_the_api(operator, run, failure):
    PipelineFailure.objects.filter(pk=failure.pk).update(next_retry_at=None)
    response = operator.get(FAILURES, {"state": "scheduled"})
    assert failure.pk not in [row.pk for row in response.context["cl"].result_list]
    html = response.content.decode()
    assert "Scheduled (replayed at next_retry_at)" in html and "Parked (replayed only by hand)" in html
    assert "replay scheduled" not in html


def test_the_failure_list_shows_the_error_message(operator, run):
    assert "the provider broke" in operator.get(FAILURES).content.decode()


def test_a_failures_page_shows_replay_and_resolve_buttons(operator, failure):
    html = operator.get(change_url(failure)).content.decode()
    assert "Replay now" in html and "Resolve…" in html
    assert 'name="_save"' not in html


def test_the_index_shows_the_unresolved_failure_count(operator, run):
    html = operator.get(reverse("admin:index")).content.decode()
    assert "<strong>2</strong> unresolved failures" in html
    assert "Periodic tasks" in html  # the rest of the index is Django's own


# --- replay ---------------------------------------------------------------------------------------------

def test_the_replay_action_puts_the_selected_blocks_back_to_work(operator, run):
    act(operator, "replay_now", PipelineFailure.objects.all())
    assert set(PipelineFailure.objects.values_list("replay_count", flat=True)) == {1}
    assert counts(run) == ("running", 1, 0, 0)


def test_the_replay_button_replays_one_failure(operator, run, failure):
    response = operator.post(reverse("admin:failures_pipelinefailure_replay", args=[failure.pk]))
    assert response.status_code == 302
    assert Block.objects.get(pk=failure.block_id).status == "pending"
    assert Block.objects.get(run=run, uid="b2").status == "failed"


def test_the_replay_button_needs_a_post(operator, failure):
    response = operator.get(reverse("admin:failures_pipelinefailure_replay", args=[failure.pk]))
    assert response.status_code == 405
    assert Block.objects.get(pk=failure.block_id).status == "failed"


def test_replaying_a_resolved_failure_from_the_admin_is_reported_not_done(operator, failure):
    PipelineFailure.objects.filter(pk=failure.pk).update(resolved_at="2020-01-01T00:00Z")
    response = act(operator, "replay_now", [failure])
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("already resolved" in m for m in messages)
    assert Block.objects.get(pk=failure.block_id).status == "failed"


# --- resolve --------------------------------------------------------------------------------------------

def test_the_resolve_action_first_asks_for_a_note(operator, failure):
    response = act(operator, "resolve_with_note", [failure])
    assert response.status_code == 200
    assert 'name="note"' in response.content.decode()
    failure.refresh_from_db()
    assert failure.resolved_at is None


def test_the_resolve_action_resolves_the_selected_failures_with_the_note(operator, run):
    rows = list(PipelineFailure.objects.all())
    response = act(operator, "resolve_with_note", rows, note="bad inputs", apply="1")
    assert response.status_code == 302
    assert set(PipelineFailure.objects.values_list("resolution_note", flat=True)) == {"bad inputs"}
    assert not PipelineFailure.objects.filter(resolved_at__isnull=True).exists()


def test_the_resolve_action_without_a_note_asks_again(operator, failure):
    response = act(operator, "resolve_with_note", [failure], note="  ", apply="1")
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    failure.refresh_from_db()
    assert failure.resolved_at is None


def test_the_resolve_button_resolves_one_failure_with_a_note(operator, failure):
    url = reverse("admin:failures_pipelinefailure_resolve", args=[failure.pk])
    assert 'name="note"' in operator.get(url).content.decode()
    response = operator.post(url, {"note": "handled upstream", "apply": "1"})
    assert response.status_code == 302
    failure.refresh_from_db()
    assert (failure.resolution_note, failure.next_retry_at) == ("handled upstream", None)


def test_staff_without_the_change_permission_cannot_resolve(client, failure, django_user_model):
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_pipelinefailure"))
    client.force_login(viewer)
    url = reverse("admin:failures_pipelinefailure_resolve", args=[failure.pk])
    assert client.post(url, {"note": "sneaky"}).status_code == 403
    failure.refresh_from_db()
    assert failure.resolved_at is None


# --- diagnostic log -------------------------------------------------------------------------------------

def test_the_diagnostic_log_lists_and_filters_by_code_function_and_level(operator, run):
    response = operator.get(DIAGNOSTICS, {"event_code__exact": "DOWNSTREAM_CALL_FAILED",
                                          "function_name": "conveyor.runs.serve",
                                          "log_level__exact": "ERROR"})
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 2


def test_a_diagnostic_entry_is_read_only(operator, run):
    entry = DiagnosticLog.objects.first()
    url = reverse("admin:failures_diagnosticlog_change", args=[entry.pk])
    assert 'name="_save"' not in operator.get(url).content.decode()
    assert operator.post(url, {"message": "rewritten"}).status_code == 403
    assert operator.get(reverse("admin:failures_diagnosticlog_add")).status_code == 403
    assert operator.post(reverse("admin:failures_diagnosticlog_delete", args=[entry.pk])).status_code == 403
