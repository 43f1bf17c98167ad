"""`scripts/benchmark.py --plot`: samples become rates, and the figure is written as a PNG."""

import matplotlib.image

from scripts.bench_plot import Sample, Series, plot_scenarios, to_series


def test_counts_become_rates_per_second():
    samples = [Sample(t=t / 4, blocks_done=10 * t, mock="m", in_flight=5, by_status={"200": 10 * t})
               for t in range(9)]
    series = to_series(samples)
    assert series.blocks_per_s[0] is None  # nothing to compare the first sample with
    assert series.blocks_per_s[-1] == 40.0 and series.calls_per_s[-1] == 40.0


def test_a_new_mock_starts_its_counters_afresh_instead_of_reading_as_a_negative_rate():
    samples = [Sample(t=0.0, blocks_done=0, mock="a", by_status={"529": 30}),
               Sample(t=0.25, blocks_done=0, mock="a", by_status={"529": 40}),
               Sample(t=0.5, blocks_done=0, mock="b", by_status={"529": 0}),
               Sample(t=0.75, blocks_done=0, mock="b", by_status={"529": 2})]
    assert to_series(samples).refused_529_per_s == [None, 40.0, None, 8.0]


def test_the_plot_is_a_png_with_a_row_per_scenario(tmp_path):
    t = [i / 4 for i in range(40)]
    ramp = [min(i, 20) * 5.0 for i in range(40)]
    series = Series(t=t, blocks_per_s=ramp, calls_per_s=ramp, in_flight=[100.0] * 40,
                    refused_429_per_s=[0.0] * 20 + [3.0] * 20, refused_529_per_s=[None] * 40)
    path = plot_scenarios({"latency": series, "overload": series}, tmp_path / "bench.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(path).shape
    assert width == 1600 and height == 2 * 340
