"""Charts drawn on the server as SVG: readable numbers, a tooltip per bar, nothing fetched."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from apps.console.charts import Series, nice_ceiling, stacked_bars

START = datetime(2026, 12, 10, 14, 31, tzinfo=UTC)
MINUTES = [START + timedelta(minutes=i) for i in range(60)]


def chart(*series: Series) -> str:
    return str(stacked_bars(buckets=MINUTES, series=list(series), label=lambda m: m.strftime("%H:%M"),
                            labelled=lambda m: m.minute % 10 == 0, title="Blocks answered",
                            unit="per minute"))


@pytest.mark.parametrize(("value", "ceiling"), [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (260, 500)])
def test_the_y_axis_ends_at_a_round_number(value, ceiling):
    assert nice_ceiling(value) == ceiling


def test_each_non_empty_minute_is_a_bar_whose_tooltip_says_its_numbers():
    ok = [0] * 60
    failed = [0] * 60
    ok[5], failed[5], ok[59] = 12, 3, 4
    svg = chart(Series("succeeded", "#5cb85c", ok), Series("failed", "#d9534f", failed))
    assert svg.count("<g><title>") == 2
    assert "<title>14:36: 12 succeeded, 3 failed</title>" in svg
    assert "16 succeeded" in svg and "3 failed" in svg  # the legend's totals


def test_times_are_labelled_at_round_minutes_and_the_newest():
    svg = chart(Series("succeeded", "#5cb85c", [1] * 60))
    labels = re.findall(r'font-size="10" fill="currentColor">(\d\d:\d\d)</text>', svg)
    assert labels == ["14:40", "14:50", "15:00", "15:10", "15:20", "15:30"]


def test_an_empty_chart_says_so():
    assert "nothing in this time" in chart(Series("succeeded", "#5cb85c", [0] * 60))


def test_a_chart_has_no_script_and_no_outside_reference():
    svg = chart(Series("succeeded", "#5cb85c", [1] * 60))
    assert "<script" not in svg and "href" not in svg and "http" not in svg.replace("http://www.w3", "")
