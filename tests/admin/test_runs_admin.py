"""Runs and blocks in the operator's console: readable pages, read-only data, and actions that go
through the same services as the API."""

import pytest
from django.urls import reverse

from apps.runs.models import Block, RunPass
from tests.factories import SECRET, make_run
from tests.failures.helpers import counts, settle

pytestmark = pytest.mark.django_db

RUNS = reverse("admin:runs_run_changelist")
BLOCKS = reverse("admin:runs_block_changelist")


@pytest.fixture
def ended_run(owner, offline_key):
    """Three blocks: b0 and b1 succeeded, b2 failed for good."""
    return settle(make_run(owner, offline_key, ["a", "b", "c"], max_attempts=1, name="essays"), fail={"b2"})


def act(client, action: str, *runs):
    return client.post(RUNS, {"action": action, "_selected_action": [str(r.pk) for r in runs]})


# --- pages ----------------------------------------------------------------------------------------------

def test_the_run_list_shows_progress_counts_and_cost(operator, ended_run):
    html = operator.get(RUNS).content.decode()
    assert "3 of 3 blocks ended" in html
    assert "2 / 1 / 0 / 3" in html
    assert f"${ended_run.cost_usd:.4f}" in html


def test_the_run_list_filters_by_status_and_model(operator, ended_run, owner, offline_key):
    make_run(owner, offline_key, ["queued"], name="waiting")
    html = operator.get(RUNS, {"status__exact": "complete", "model": "claude-haiku-4-5"}).content.decode()
    assert "essays" in html
    assert "waiting" not in html


def test_a_runs_page_shows_its_block_states_and_recent_failures(operator, ended_run):
    response = operator.get(reverse("admin:runs_run_change", args=[ended_run.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Succeeded: 2" in html and "Failed: 1" in html
    assert "api_error" in html and "the provider broke" in html


def test_a_runs_page_never_shows_its_keys_secret(operator, ended_run):
    html = operator.get(reverse("admin:runs_run_change", args=[ended_run.pk])).content.decode()
    assert SECRET not in html
    assert f"main (…{SECRET[-4:]})" in html  # the key is shown by its label and suffix


def test_a_runs_page_cannot_be_saved(operator, ended_run):
    url = reverse("admin:runs_run_change", args=[ended_run.pk])
    assert 'name="_save"' not in operator.get(url).content.decode()
    assert operator.post(url, {"completed_blocks": 99}).status_code == 403
    assert counts(ended_run) == ("complete", 2, 1, 0)


def test_the_block_list_filters_by_status_error_code_and_prompt_version(operator, ended_run):
    query = {"status__exact": "failed", "error_code": "api_error",
             "prompt_version": ended_run.prompt_version, "run": str(ended_run.pk)}
    response = operator.get(BLOCKS, query)
    assert response.status_code == 200
    assert list(response.context["cl"].result_list.values_list("uid", flat=True)) == ["b2"]


def test_the_block_list_does_not_count_the_whole_table(operator, ended_run):
    response = operator.get(BLOCKS)
    assert response.context["cl"].show_full_result_count is False


def test_a_blocks_page_shows_its_attempts_read_only(operator, ended_run):
    block = ended_run.blocks.get(uid="b2")
    response = operator.get(reverse("admin:runs_block_change", args=[block.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "the provider broke" in html  # the attempt's error, from the inline
    assert 'name="_save"' not in html
    assert 'name="attempt_set-0-output"' not in html


def test_a_blocks_output_cannot_be_edited(operator, ended_run):
    block = ended_run.blocks.get(uid="b0")
    response = operator.post(reverse("admin:runs_block_change", args=[block.pk]), {"output": "forged"})
    assert response.status_code == 403
    assert Block.objects.get(pk=block.pk).output == "output of b0"


# --- actions --------------------------------------------------------------------------------------------

def test_the_cancel_action_cancels_the_selected_runs(operator, owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b"])
    act(operator, "cancel_runs", run)
    assert counts(run) == ("canceled", 0, 0, 2)


def test_the_reseed_failed_action_starts_a_new_pass_over_the_failed_blocks(operator, ended_run):
    act(operator, "reseed_failed", ended_run)
    ended_run.refresh_from_db()
    assert (ended_run.current_pass, counts(ended_run)) == (2, ("running", 2, 0, 0))
    assert RunPass.objects.get(run=ended_run, number=2).scope == "failed"


def test_the_reseed_all_action_takes_every_block_back(operator, ended_run):
    act(operator, "reseed_all", ended_run)
    assert counts(ended_run) == ("running", 0, 0, 0)
    assert ended_run.blocks.filter(status="pending").count() == 3


def test_an_action_refused_for_one_run_reports_it_and_changes_nothing(operator, owner, offline_key):
    running = make_run(owner, offline_key, ["a"])
    response = act(operator, "reseed_all", running)
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("cannot be reseeded" in m for m in messages)
    assert counts(running) == ("queued", 0, 0, 0)
