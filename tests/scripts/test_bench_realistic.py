"""`scripts/benchmark.py --scenarios realistic`: its options, its arithmetic and its table (nothing timed)."""

import os

import pytest

from mock_provider.tokens import count_text
from scripts.bench_meter import parse_stat
from scripts.bench_realistic import RealisticSettings, binding_limit, render_table, row_from
from scripts.benchmark import parse_args
from scripts.peer_common import block_text


def test_the_options_become_the_scenarios_settings_and_the_mocks_config():
    args = parse_args(["--scenarios", "realistic", "--latency", "3", "--jitter", "1", "--rpm", "600",
                       "--blocks", "1000", "--systems", "plain,conveyor", "--burst-seconds", "2"])

    settings = args.realistic
    assert (settings.blocks, settings.systems, settings.parallelism) == (1000, ("plain", "conveyor"), 1000)
    assert settings.mock_config() == {"latency_ms": 3000, "latency_jitter_ms": 1000, "rpm": 600,
                                      "itpm": 2_000_000, "otpm": 400_000, "burst_seconds": 2.0}


def test_without_blocks_the_realistic_scenario_takes_ten_thousand_and_the_others_three():
    args = parse_args([])

    assert args.realistic == RealisticSettings()
    assert (args.realistic.blocks, args.blocks) == (10_000, 3000)
    assert "realistic" in args.scenarios.split(",")


@pytest.mark.parametrize("argv", [["--systems", "conveyor,celery"], ["--scenarios", "realism"]])
def test_an_unknown_system_or_scenario_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)

    assert "unknown" in capsys.readouterr().err


def test_the_binding_limit_is_the_lowest_of_the_three():
    assert binding_limit(4000, 2_000_000, 400_000, 400, 64) == pytest.approx((66.67, "rpm"), abs=0.01)
    assert binding_limit(4000, 2_000_000, 400_000, 1000, 64)[1] == "itpm"
    assert binding_limit(4000, 2_000_000, 40_000, 400, 64)[1] == "otpm"


def stats(ok: int, span: float, refused: int, peak: int) -> dict:
    return {"messages_ok": {"count": ok, "first_t": 100.0, "last_t": 100.0 + span},
            "tokens": {"input_tokens": 400 * ok, "cache_creation_input_tokens": 0, "output_tokens": 64 * ok},
            "by_path": {"/v1/messages": ok + refused}, "by_status": {"200": ok, "429": refused},
            "peak_in_flight": peak}


def test_a_row_reads_the_rate_refusals_and_memory_from_what_was_measured():
    row = row_from("plain", stats(ok=9_801, span=196.0, refused=199, peak=1000), RealisticSettings(),
                   failed_blocks=199, cpu_seconds=80.0, wall_seconds=215.0, rss_growth=50 * 1024 * 1000)

    assert row.calls_per_s == pytest.approx(50.0)
    assert row.ratio == pytest.approx(0.75)
    assert row.refused_share == pytest.approx(0.0199)
    assert row.kb_per_call == pytest.approx(50.0)


def test_the_table_has_a_header_and_a_row_per_system():
    settings = RealisticSettings(blocks=1000)
    rows = [row_from(name, stats(ok=1000, span=30.0, refused=refused, peak=peak), settings, failed_blocks=0,
                     cpu_seconds=12.3, wall_seconds=45.6, rss_growth=None)
            for name, refused, peak in (("conveyor", 0, 256), ("plain", 120, 1000))]

    lines = render_table(rows)

    assert lines[0].split("|")[1].strip() == "system"
    assert [line.split("|")[1].strip() for line in lines[2:4]] == ["conveyor", "plain"]
    assert "| 0.50 " in lines[2] and "| 10.7% " in lines[3] and "| 0 of 1,000 " in lines[2]
    assert lines[-1] == "binding limit: rpm = 66.7 calls/s"


def test_every_block_has_the_asked_for_number_of_input_tokens_and_its_own_text():
    assert {count_text(block_text(i, 400, 40)) for i in (0, 7, 9_999)} == {400}
    assert block_text(1, 400, 40) != block_text(2, 400, 40)


def test_replies_as_long_as_max_tokens_are_refused_as_an_option():
    with pytest.raises(SystemExit):
        parse_args(["--max-tokens", "64", "--output-tokens", "64"])


def test_a_proc_stat_line_is_read_whatever_the_command_is_called():
    line = "4242 (celery (worker) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 9 2048 0"

    stat = parse_stat(4242, line)

    assert (stat.session, stat.rss_bytes > 0) == (4242, True)
    assert stat.cpu_seconds == pytest.approx(300 / os.sysconf("SC_CLK_TCK"))
