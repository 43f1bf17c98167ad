"""static/console/overview_live.js in node: the overview's open runs are swapped in from the server,
the page reloads when runs start or end, and a refused fetch (logged out) stops the polling."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders


def overview_live(*responses: tuple[int, str]) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    harness = Path(__file__).parent / "js" / "overview_live_harness.js"
    script = finders.find("console/overview_live.js")
    done = subprocess.run([node, str(harness), script, json.dumps(responses)], capture_output=True, text=True,
                          timeout=30, check=True)
    return json.loads(done.stdout)


def test_the_open_runs_are_swapped_in_from_the_server_without_a_reload():
    page = overview_live((200, '<tr data-run="a">12/60</tr>'), (200, '<tr data-run="a">30/60</tr>'))
    assert page["fetched"] == ["/admin/overview/runs/"] * 2
    assert page["seen"] == ['<tr data-run="a">12/60</tr>', '<tr data-run="a">30/60</tr>']
    assert not page["reloaded"]


def test_the_page_reloads_when_a_run_starts_or_ends():
    assert overview_live((200, '<tr data-run="a"></tr><tr data-run="b"></tr>'))["reloaded"]


def test_a_refused_fetch_stops_the_polling_and_dims_the_list():
    page = overview_live((302, ""), (200, "never asked"))
    assert (page["stale"], page["polling"], page["fetched"]) == (True, False, ["/admin/overview/runs/"])
