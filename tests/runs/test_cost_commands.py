"""The cost report at the command line: `manage.py compare`, the warning `submit` prints, and the
savings and hit rate in `runs show` and the follow summary. Runs made through the real SDK against
the mock."""

import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from apps.runs.models import Run
from apps.runs.reporting.progress import summary
from tests.factories import make_run
from tests.runs.helpers import serve_until_settled

pytestmark = pytest.mark.django_db(transaction=True)

RUBRIC = (Path(settings.BASE_DIR) / "samples" / "grading-rubric.md").read_text(encoding="utf-8")
INPUTS = [f"essay {i} about the river" for i in range(6)]


@pytest.fixture
def pair(owner, mock_key):
    """The same blocks uncached and cached, served."""
    return tuple(
        serve_until_settled(make_run(owner, mock_key, INPUTS, system_prompt=RUBRIC, name=name,
                                     options={"cache": cache}, parallelism=1))
        for name, cache in (("uncached", False), ("cached", True))
    )


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_compare_prints_both_runs_costs_and_no_mismatches_for_a_cache_off_cache_on_pair(pair):
    text = run_command("compare", str(pair[0].pk), str(pair[1].pk))
    assert "parity by uid: 6 compared, 6 exact matches, 0 mismatches (identical)" in text
    assert "cache off, 1/call, live" in text and "cache on, 1/call, live" in text
    assert "B cost 0." in text and " of A" in text
    assert "cache hit rate" in text and "83.3%" in text  # 5 of 6 calls read the rubric


def test_compare_json_is_the_apis_body(pair):
    body = json.loads(run_command("compare", str(pair[0].pk), str(pair[1].pk), "--json"))
    assert (body["parity"]["mismatches"]["count"], body["parity"]["exact_matches"]) == (0, 6)
    assert body["b"]["tokens"]["cache_read"] > 0 and body["a"]["tokens"]["cache_read"] == 0
    assert body["cost_ratio"] < 0.5


def test_compare_lists_the_uids_that_differ(owner, mock_key):
    a = serve_until_settled(make_run(owner, mock_key, ["same", "one text"]))
    b = serve_until_settled(make_run(owner, mock_key, ["same", "another text"]))
    text = run_command("compare", str(a.pk), str(b.pk))
    assert "1 exact matches, 1 mismatches" in text
    assert "mismatches (1): b1" in text


def test_compare_of_an_unknown_run_is_a_clear_error(pair):
    with pytest.raises(CommandError, match="no run"):
        call_command("compare", str(pair[0].pk), "00000000-0000-0000-0000-000000000000")


def test_submit_prints_the_warning_about_a_prefix_too_short_to_cache(owner, mock_key, tmp_path):
    path = tmp_path / "blocks.jsonl"
    path.write_text('{"input": "one"}\n')
    text = run_command("submit", str(path), "--user", "owner", "--key", "main", "--cache",
                       "--system", "a short system prompt")
    assert "warning: caching is on but the cacheable prefix" in text
    assert "claude-haiku-4-5 caches from 4,096" in text
    assert Run.objects.get().warnings[0]["code"] == "cache_prefix_too_short"


def test_submit_estimate_prints_the_same_warning_and_submits_nothing(owner, mock_key, tmp_path):
    path = tmp_path / "blocks.jsonl"
    path.write_text('{"input": "one"}\n')
    text = run_command("submit", str(path), "--user", "owner", "--key", "main", "--cache",
                       "--system", "short", "--estimate")
    assert "nothing was submitted" in text and "warning: caching is on" in text
    assert Run.objects.count() == 0


def test_the_summary_says_what_caching_saved_and_the_hit_rate(pair):
    text = summary(pair[1])
    assert "savings    without caching $" in text and "caching saved $" in text
    assert "cache      hit rate 83.3%" in text


def test_runs_show_flags_caching_that_never_hits(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, [f"x{i}" for i in range(10)], parallelism=1,
                                       system_prompt="too short to cache", options={"cache": True}))
    text = run_command("runs", "show", str(run.pk))
    assert "warning    caching is on but the cacheable prefix is about" in text
    assert "warning    caching is on, but no cache read after" in text
    assert "cache      hit rate 0.0%" in text


def test_a_run_that_has_not_called_yet_prints_its_warning_but_no_savings(owner, mock_key):
    run = make_run(owner, mock_key, ["x"], system_prompt="short", options={"cache": True})
    text = summary(run)
    assert "savings" not in text and "cache      hit rate" not in text
    assert "warning    caching is on but the cacheable prefix" in text
