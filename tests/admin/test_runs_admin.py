"""Runs and blocks in the operator's console: readable pages, read-only data, and actions that go
through the same services as the API."""

import json
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.urls import reverse

from apps.core.formatting import format_usd
from apps.runs.models import Block, PausedCause, RunPass, RunStatus
from tests.api.helpers import set_status
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
    assert "3 of 3 blocks worked" in html and "100% · 3/3, 1 failed" in html
    assert format_usd(ended_run.cost_usd) in html


def test_a_run_canceled_after_16_of_100_blocks_reads_16_percent_not_100(operator, owner, offline_key):
    run = make_run(owner, offline_key, [f"essay {i}" for i in range(100)])
    set_status(run, RunStatus.CANCELED, completed_blocks=16, canceled_blocks=84)
    html = operator.get(RUNS).content.decode()
    assert "</span> 16% · 16/100, 84 canceled</span>" in html
    assert "</span> 100%" not in html


def test_costs_read_with_a_sensible_precision(operator, owner, offline_key):
    run = make_run(owner, offline_key, ["a"])
    set_status(run, RunStatus.COMPLETE, cost_usd=Decimal("0.01371700"))
    html = operator.get(reverse("admin:runs_run_change", args=[run.pk])).content.decode()
    assert "$0.0137" in html and "0.01371700" not in html


def test_run_lists_show_short_unwrapped_ids_with_the_whole_id_in_the_tooltip(operator, ended_run):
    html = operator.get(BLOCKS).content.decode()
    run_id = str(ended_run.pk)
    assert f'<code style="white-space:nowrap" title="{run_id}">{run_id[:8]}</code>' in html


def test_a_paused_run_says_why_in_the_list_and_on_its_page(operator, owner, offline_key):
    run = set_status(make_run(owner, offline_key, ["a"]), RunStatus.PAUSED,
                     paused_cause=PausedCause.BUDGET, paused_reason="budget of $0.5000 spent")
    assert "<strong>paused</strong>: by its budget" in operator.get(RUNS).content.decode()
    page = operator.get(reverse("admin:runs_run_change", args=[run.pk])).content.decode()
    assert "why it is not moving" in page.lower()
    assert "paused: The run&#x27;s budget is spent; budget of $0.5000 spent" in page


def test_an_active_runs_page_follows_the_runs_event_stream(operator, owner, offline_key):
    running = set_status(make_run(owner, offline_key, ["a", "b"]), RunStatus.RUNNING)
    html = operator.get(reverse("admin:runs_run_change", args=[running.pk])).content.decode()
    events = reverse("run-events", args=[running.pk])
    assert f'<div class="run-summary" id="run-live" data-events="{events}">' in html
    assert '<strong data-live="worked">0/2</strong>' in html
    assert re.search(r'<script src="/static/runs/run_live\.js" defer></script>', html)


def test_an_active_runs_page_reloads_itself_only_without_javascript(operator, owner, offline_key):
    running = set_status(make_run(owner, offline_key, ["a"]), RunStatus.RUNNING)
    html = operator.get(reverse("admin:runs_run_change", args=[running.pk])).content.decode()
    assert re.search(r'<noscript><meta http-equiv="refresh" content="\d+"></noscript>', html)


def test_an_ended_runs_page_neither_follows_nor_reloads(operator, ended_run):
    html = operator.get(reverse("admin:runs_run_change", args=[ended_run.pk])).content.decode()
    assert "run_live.js" not in html and 'http-equiv="refresh"' not in html
    assert '<strong data-live="worked">3/3</strong>' in html


def test_the_live_script_is_served_and_reads_the_stream(client, settings, tmp_path):
    """As production serves static files: whitenoise (here from the finders, not a collectstatic)."""
    settings.MIDDLEWARE = [settings.MIDDLEWARE[0], "whitenoise.middleware.WhiteNoiseMiddleware",
                           *settings.MIDDLEWARE[1:]]
    settings.WHITENOISE_USE_FINDERS = True
    settings.STATIC_ROOT = tmp_path  # nothing collected: every file comes from the finders
    response = client.get("/static/runs/run_live.js")
    assert response.status_code == 200
    script = b"".join(response.streaming_content).decode()
    assert 'new EventSource(root.dataset.events)' in script
    assert 'addEventListener("end"' in script


def test_the_stream_the_admin_page_reads_answers_the_operators_session(operator, owner, offline_key):
    running = set_status(make_run(owner, offline_key, ["a"]), RunStatus.RUNNING)
    response = operator.get(reverse("run-events", args=[running.pk]), HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200
    assert next(iter(response.streaming_content)).startswith(b"id: ")


def test_the_block_list_shows_the_error_message(operator, ended_run):
    assert "the provider broke" in operator.get(BLOCKS).content.decode()


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


@pytest.fixture
def spent_run(owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b"], options={"max_cost_usd": "0.5"})
    return set_status(run, RunStatus.PAUSED, paused_cause=PausedCause.BUDGET, paused_reason="spent",
                      cost_usd=Decimal("0.51"))


def test_the_resume_action_resumes_the_selected_paused_runs(operator, owner, offline_key):
    run = set_status(make_run(owner, offline_key, ["a"]), RunStatus.PAUSED,
                     paused_cause=PausedCause.KEY_BLOCKED, paused_reason="402")
    act(operator, "resume_runs", run)
    assert counts(run)[0] == "running"


def test_the_budget_action_asks_for_the_new_budget_first(operator, spent_run):
    response = act(operator, "set_budget", spent_run)
    assert response.status_code == 200
    assert "New budget (USD)" in response.content.decode()
    assert counts(spent_run)[0] == "paused"


def test_raising_the_budget_from_the_action_resumes_a_run_its_budget_paused(operator, spent_run):
    operator.post(RUNS, {"action": "set_budget", "_selected_action": [str(spent_run.pk)], "apply": "1",
                         "max_cost_usd": "2.00"})
    spent_run.refresh_from_db()
    assert (spent_run.status, spent_run.options["max_cost_usd"]) == ("running", "2.0000")


def test_a_paused_runs_page_offers_resume_and_set_budget(operator, spent_run):
    html = operator.get(reverse("admin:runs_run_change", args=[spent_run.pk])).content.decode()
    assert ">Resume</button>" in html and "Set budget…" in html


def test_the_set_budget_page_of_a_run_raises_its_budget(operator, spent_run):
    url = reverse("admin:runs_run_budget", args=[spent_run.pk])
    assert operator.get(url).status_code == 200
    response = operator.post(url, {"max_cost_usd": "1.25"})
    assert response.status_code == 302
    spent_run.refresh_from_db()
    assert (spent_run.status, spent_run.options["max_cost_usd"]) == ("running", "1.2500")


def test_resuming_from_a_runs_page_whose_budget_is_spent_says_to_raise_it(operator, spent_run):
    response = operator.post(reverse("admin:runs_run_resume", args=[spent_run.pk]), follow=True)
    said = [str(m) for m in response.context["messages"]]
    assert any("not resumed: cannot resume: its next block could cost up to $" in m
               and "raise the budget to at least $0.51" in m for m in said), said
    assert counts(spent_run)[0] == "paused"


def run_live_js(*events: tuple[str, dict]) -> dict:
    """static/runs/run_live.js in node, on a fake page, fed these events."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = finders.find("runs/run_live.js")
    harness = Path(__file__).parent / "js" / "run_live_harness.js"
    done = subprocess.run([node, str(harness), script, json.dumps(events)], capture_output=True, text=True,
                          timeout=30, check=True)
    return json.loads(done.stdout)


def progress_event(operator, run) -> dict:
    response = operator.get(reverse("run-events", args=[run.pk]), HTTP_ACCEPT="text/event-stream")
    first = next(iter(response.streaming_content)).decode()
    return json.loads(first.split("data: ", 1)[1])


def test_the_summary_shows_each_progress_event_without_a_reload(operator, owner, offline_key):
    running = set_status(make_run(owner, offline_key, ["a", "b", "c", "d"]), RunStatus.RUNNING,
                         completed_blocks=2, failed_blocks=1, cost_usd=Decimal("0.0123"))
    page = run_live_js(("progress", {**progress_event(operator, running), "rate": 1.5}))
    assert page["url"] == "/api/v1/runs/r/events/"
    assert {k: page["text"][k] for k in ("status", "worked", "percent", "open", "rate", "cost")} == {
        "status": "running", "worked": "3/4", "percent": "75%", "open": "1", "rate": "1.5 blocks/s",
        "cost": "$0.0123"}
    assert not page["reloaded"]


def test_the_progress_bar_moves_with_each_progress_event(operator, owner, offline_key):
    running = set_status(make_run(owner, offline_key, ["a", "b", "c", "d"]), RunStatus.RUNNING,
                         completed_blocks=2, failed_blocks=1)
    page = run_live_js(("progress", progress_event(operator, running)))
    assert page["bars"] == {"succeeded": "50.00%", "failed": "25.00%", "canceled": "0.00%"}


def test_the_live_row_reloads_the_page_once_the_run_ends(operator, owner, offline_key):
    running = set_status(make_run(owner, offline_key, ["a"]), RunStatus.RUNNING)
    end = {**progress_event(operator, running), "status": "complete"}
    page = run_live_js(("end", end))
    assert (page["text"]["status"], page["reloaded"], page["closed"]) == ("complete", True, True)


# --- the top of a run's page ----------------------------------------------------------------------------

def change_page(client, run) -> str:
    return client.get(reverse("admin:runs_run_change", args=[run.pk])).content.decode()


def test_a_runs_page_opens_with_status_progress_cost_and_actions_before_its_prompt(operator, owner,
                                                                                   offline_key):
    rubric = "A long rubric. " * 400
    run = set_status(make_run(owner, offline_key, ["a", "b"], system_prompt=rubric,
                              options={"max_cost_usd": "1.50"}),
                     RunStatus.RUNNING, completed_blocks=1, cost_usd=Decimal("0.25"))
    html = change_page(operator, run)
    summary = html.index('class="run-summary"')
    assert summary < html.index("A long rubric.")
    top = html[summary:html.index("<fieldset", summary)]
    assert 'data-live="status">running</span>' in top and 'data-live="succeeded">1</span> succeeded' in top
    assert 'data-live="cost">$0.2500</div>' in top and "$1.50 ($1.25 left)" in top
    assert "Cancel…" in top and "Set budget…" in top and "Download results (JSONL)" in top


def test_a_runs_prompt_is_folded_away(operator, owner, offline_key):
    run = make_run(owner, offline_key, ["a"], system_prompt="The rubric.")
    html = change_page(operator, run)
    assert re.search(r"<details>\s*<summary>.*Model and prompt", html, re.S)
    assert html.index("<details>") < html.index("The rubric.")


def test_a_runs_options_read_as_words(operator, owner, offline_key):
    run = make_run(owner, offline_key, ["a"], options={"cache": True, "pack_size": 5, "max_cost_usd": "2"})
    html = change_page(operator, run)
    assert "<strong>caching</strong>: on (the prefix kept 5m)" in html
    assert "<strong>packing</strong>: 5 blocks per call" in html
    assert "&quot;pack_size&quot;" not in html  # not the options' JSON


def test_an_ended_run_offers_reseed_and_downloads_but_not_cancel(operator, ended_run):
    html = change_page(operator, ended_run)
    assert "Reseed…" in html and "Download failures (JSONL)" in html
    assert "Cancel…" not in html
    assert 'data-live="failed">1</span> failed' in html and "took " in html


def test_cancel_from_a_runs_page_asks_first(operator, owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b"])
    response = operator.get(reverse("admin:runs_run_cancel", args=[run.pk]))
    assert response.status_code == 200
    assert "Its 2 open block(s) are canceled" in response.content.decode()
    assert counts(run) == ("queued", 0, 0, 0)


def test_cancel_from_a_runs_page_cancels_once_confirmed(operator, owner, offline_key):
    run = make_run(owner, offline_key, ["a", "b"])
    response = operator.post(reverse("admin:runs_run_cancel", args=[run.pk]))
    assert response.status_code == 302
    assert counts(run) == ("canceled", 0, 0, 2)


def test_reseed_from_a_runs_page_starts_a_pass_over_the_chosen_blocks(operator, ended_run):
    operator.post(reverse("admin:runs_run_reseed", args=[ended_run.pk]), {"scope": "failed"})
    ended_run.refresh_from_db()
    assert (ended_run.current_pass, counts(ended_run)) == (2, ("running", 2, 0, 0))


def test_operations_from_a_runs_page_need_the_change_permission(client, ended_run):
    viewer = get_user_model().objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_run"))
    client.force_login(viewer)
    reseed = reverse("admin:runs_run_reseed", args=[ended_run.pk])
    assert client.post(reseed, {"scope": "all"}).status_code == 403
    assert "Reseed…" not in change_page(client, ended_run)
    assert client.get(reverse("admin:runs_run_results", args=[ended_run.pk])).status_code == 200


def test_a_runs_results_download_is_its_jsonl_in_block_order(operator, ended_run):
    response = operator.get(reverse("admin:runs_run_results", args=[ended_run.pk]))
    assert response["Content-Disposition"] == f'attachment; filename="run-{ended_run.pk}-results.jsonl"'
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [(r["uid"], r["status"]) for r in rows] == [("b0", "succeeded"), ("b1", "succeeded"),
                                                       ("b2", "failed")]


def test_a_runs_results_download_as_csv_has_a_header_and_a_row_per_block(operator, ended_run):
    response = operator.get(reverse("admin:runs_run_results_csv", args=[ended_run.pk]))
    assert response["Content-Disposition"] == f'attachment; filename="run-{ended_run.pk}-results.csv"'
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("uid,block_index,status,output,")
    assert [line.split(",")[0] for line in lines[1:]] == ["b0", "b1", "b2"]


def test_a_runs_failures_download_as_parquet_holds_its_dead_letter_rows(operator, ended_run):
    import io

    import pyarrow.parquet as pq

    response = operator.get(reverse("admin:runs_run_failures_parquet", args=[ended_run.pk]))
    table = pq.read_table(io.BytesIO(b"".join(response.streaming_content)))
    assert table.column("uid").to_pylist() == ["b2"]


def test_a_runs_failures_download_is_its_dead_letter_rows(operator, ended_run):
    response = operator.get(reverse("admin:runs_run_failures", args=[ended_run.pk]))
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [(r["block_uid"], r["error_code"], r["state"]) for r in rows] == [("b2", "api_error", "parked")]
    assert SECRET not in json.dumps(rows)


def test_a_runs_recent_failures_link_their_blocks(operator, ended_run):
    block = ended_run.blocks.get(uid="b2")
    assert f'<a href="{reverse("admin:runs_block_change", args=[block.pk])}">b2</a>' in change_page(operator,
                                                                                                  ended_run)


def test_the_diagnostic_log_links_each_entrys_run(operator, ended_run):
    html = operator.get(reverse("admin:failures_diagnosticlog_changelist")).content.decode()
    assert f'<a href="{reverse("admin:runs_run_change", args=[ended_run.pk])}">' in html


def test_a_run_whose_every_block_failed_says_so_in_the_list(operator, owner, offline_key):
    run = settle(make_run(owner, offline_key, ["a"], max_attempts=1), fail={"b0"})
    assert run.status == "complete"
    assert "complete, all failed" in operator.get(RUNS).content.decode()


def test_a_new_budget_that_cannot_pay_for_the_next_block_leaves_the_run_paused_and_says_so(operator,
                                                                                          spent_run):
    url = reverse("admin:runs_run_budget", args=[spent_run.pk])
    response = operator.post(url, {"max_cost_usd": "0.51"}, follow=True)
    said = [str(m) for m in response.context["messages"]]
    assert any(m.startswith(f"Run {spent_run.pk} still paused: the next block could cost up to $")
               and m.endswith("is left of its budget of $0.51") for m in said), said
    assert counts(spent_run)[0] == "paused"
