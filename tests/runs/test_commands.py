import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from apps.core.formatting import format_usd
from apps.keys.models import ProviderKey
from apps.runs.models import Run
from apps.runs.reporting.costs import Savings, run_savings
from tests.factories import make_run
from tests.runs.helpers import serve_until_settled

pytestmark = pytest.mark.django_db(transaction=True)


def test_submit_creates_a_run_from_a_jsonl_file(owner, mock_key, tmp_path):
    path = tmp_path / "blocks.jsonl"
    path.write_text('{"uid": "a", "input": "one"}\n{"input": "two"}\n')
    out = io.StringIO()
    call_command("submit", str(path), "--user", "owner", "--key", "main", "--parallelism", "4",
                 stdout=out)
    run = Run.objects.get()
    assert f"submitted run {run.pk} with 2 blocks" in out.getvalue()
    assert (run.parallelism, list(run.blocks.values_list("uid", flat=True))) == (4, ["a", "line-2"])


def test_submit_names_the_bad_line_and_creates_nothing(owner, mock_key, tmp_path):
    path = tmp_path / "blocks.jsonl"
    path.write_text('{"input": "fine"}\n{"input": \n')
    with pytest.raises(CommandError, match="line 2: is not valid JSON"):
        call_command("submit", str(path), "--user", "owner", "--key", "main")
    assert Run.objects.count() == 0


def test_submit_refuses_a_key_the_user_does_not_own(owner, outsider, mock_key, tmp_path):
    path = tmp_path / "blocks.jsonl"
    path.write_text('{"input": "x"}\n')
    with pytest.raises(CommandError, match="has no key"):
        call_command("submit", str(path), "--user", "outsider", "--key", str(mock_key.pk))


@pytest.fixture
def blocks_file(tmp_path):
    path = tmp_path / "blocks.jsonl"
    path.write_text('{"input": "one"}\n')
    return path


@pytest.mark.parametrize(("option", "value", "named"), [
    ("--max-cost-usd", "abc", r"--max-cost-usd \(options.max_cost_usd\)"),
    ("--parallelism", "many", r"--parallelism \(parallelism\)"),
    ("--pack-size", "0", r"--pack-size \(options.pack_size\)"),
    ("--cache-ttl", "2h", r"--cache-ttl \(options.cache_ttl\)"),
    ("--model", "gpt-4o", r"--model \(model\): unknown model 'gpt-4o'"),
    ("--max-tokens", "100000", r"--max-tokens \(max_tokens\): 100000 is more than .* at most 64000 output "),
    ("--prompt", "Grade this essay", r"--prompt \(prompt_template\): must contain \{input\}"),
])
def test_submit_checks_its_options_as_the_api_does_and_creates_nothing(owner, offline_key, blocks_file,
                                                                       option, value, named):
    with pytest.raises(CommandError, match=named):
        call_command("submit", str(blocks_file), "--user", "owner", "--key", "main", option, value)
    assert Run.objects.count() == 0


def test_submit_reads_backslash_n_in_a_prompt_as_a_newline(owner, offline_key, blocks_file):
    call_command("submit", str(blocks_file), "--user", "owner", "--key", "main",
                 "--prompt", "Grade this essay:\\n\\n{input}", stdout=io.StringIO())
    assert Run.objects.get().prompt_template == "Grade this essay:\n\n{input}"


def test_submit_reads_a_prompt_file_as_it_is(owner, offline_key, blocks_file, tmp_path):
    template = tmp_path / "prompt.txt"
    template.write_text("Keep \\n as typed:\n{input}")
    call_command("submit", str(blocks_file), "--user", "owner", "--key", "main",
                 "--prompt", f"@{template}", stdout=io.StringIO())
    assert Run.objects.get().prompt_template == "Keep \\n as typed:\n{input}"


def test_submit_refuses_a_key_whose_validation_failed(owner, offline_key, blocks_file):
    ProviderKey.objects.filter(pk=offline_key.pk).update(is_valid=False, validation_error="revoked")
    with pytest.raises(CommandError, match="key is invalid: revoked"):
        call_command("submit", str(blocks_file), "--user", "owner", "--key", "main")
    assert Run.objects.count() == 0


def test_submit_for_a_user_that_does_not_exist_says_how_to_create_one(db, blocks_file):
    with pytest.raises(CommandError, match="createsuperuser --username alice"):
        call_command("submit", str(blocks_file), "--user", "alice", "--key", "main")


def test_export_writes_one_json_line_per_block_in_order(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, ["first", "second [[mock:status=400]]"]))
    out = io.StringIO()
    call_command("export", str(run.pk), stdout=out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["uid"], r["status"]) for r in rows] == [("b0", "succeeded"), ("b1", "failed")]
    assert rows[0]["output"] and rows[0]["usage"]["output_tokens"] > 0
    assert rows[1]["error"]["code"] == "invalid_request_error"


def test_export_of_an_unknown_run_is_a_clear_error():
    with pytest.raises(CommandError, match="no run"):
        call_command("export", "not-a-run")


@dataclass(frozen=True)
class Demo:
    output: str
    run: Run
    savings: Savings


@pytest.fixture(scope="module")
def demo(django_db_blocker) -> Iterator[Demo]:
    """One demo for the tests that read it (it takes seconds), kept as it was at its end: each test
    of this module empties the database after itself."""
    with django_db_blocker.unblock():
        out = io.StringIO()
        call_command("demo", "--latency-ms", "0", stdout=out, stderr=io.StringIO())
        run = Run.objects.get()
        yield Demo(out.getvalue(), run, run_savings(run))
        Run.objects.all().delete()


def test_the_demo_runs_a_sample_batch_to_completion(demo):
    assert demo.run.status == "complete"
    assert demo.run.completed_blocks + demo.run.failed_blocks == demo.run.total_blocks == 60
    assert "60 total" in demo.output


def test_the_demo_packs_and_caches_the_sample(demo):
    assert (demo.run.options["pack_size"], demo.run.options["cache"]) == (5, True)
    assert demo.run.cache_read_input_tokens > 0


def test_the_demo_says_its_faults_were_injected_and_its_cost_simulated(demo):
    assert "with a 500 on purpose" in demo.output
    assert "the mock's simulated token usage priced at claude-haiku-4-5's real rates" in demo.output


def test_the_demo_prints_what_caching_and_packing_saved_from_the_recorded_usage(demo):
    assert demo.savings.caching_saved_usd > 0 and demo.savings.packing_saved_usd > 0
    assert f"caching saved {format_usd(demo.savings.caching_saved_usd)}" in demo.output
    assert f"packing saved {format_usd(demo.savings.packing_saved_usd)}" in demo.output


def test_the_demos_closing_hint_is_a_command_that_runs_as_printed(demo):
    assert f"All results: uv run python manage.py export {demo.run.pk} > results.jsonl" in demo.output


def manage_py(*args: str) -> subprocess.Popen:
    """`python manage.py ARGS` in a process of its own, on the test database, its output piped."""
    database = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "TEST_DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
                                f"{database['NAME']}"}
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_an_export_into_a_reader_that_stops_early_ends_quietly(owner, offline_key):
    """`manage.py export RUN | head -1`: no BrokenPipeError traceback for the person at the shell."""
    run = make_run(owner, offline_key, [f"block {i}" for i in range(3000)])
    export = manage_py("export", str(run.pk))
    first = export.stdout.readline()
    export.stdout.close()
    _, errors = export.communicate(timeout=60)
    assert json.loads(first)["uid"] == "b0"
    assert b"Traceback" not in errors


def test_runs_show_into_a_reader_that_has_gone_ends_quietly(owner, offline_key):
    """`manage.py runs show RUN | head`: the reader is gone before the command writes a line."""
    run = make_run(owner, offline_key, ["one", "two"])
    show = manage_py("runs", "show", str(run.pk))
    show.stdout.close()
    _, errors = show.communicate(timeout=60)
    assert b"Traceback" not in errors and b"BrokenPipeError" not in errors, errors.decode()


def test_submit_refuses_a_budget_below_one_block_naming_the_smallest_that_works(owner, offline_key,
                                                                                 blocks_file):
    with pytest.raises(CommandError, match=r"--max-cost-usd \(options.max_cost_usd\): this run's largest "
                                           r"block could cost up to \$[0-9.]+.*set a budget of at least"):
        call_command("submit", str(blocks_file), "--user", "owner", "--key", "main",
                     "--max-cost-usd", "0.0001")
    assert Run.objects.count() == 0
