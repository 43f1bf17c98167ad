"""Charts drawn on the server as SVG: no script, no library, nothing fetched from elsewhere (the
Content-Security-Policy allows neither), readable without JavaScript, and each bar says its numbers in
a tooltip (an SVG <title>)."""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 620, 190
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 22


@dataclass(frozen=True)
class Series:
    label: str
    colour: str
    values: Sequence[int]


def nice_ceiling(value: float) -> int:
    """The smallest of 1, 2, 5 x 10^n at or above `value` (at least 1): a y axis people read."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return int(next(step * power for step in (1, 2, 5, 10) if step * power >= value))


def _number(value: float) -> str:
    return f"{value:g}" if value < 1000 else f"{value / 1000:g}k"


def joined(parts: Sequence[SafeString]) -> SafeString:
    """Markup already built with format_html, side by side."""
    return format_html_join("", "{}", ((part,) for part in parts))


def _at(value: float) -> str:
    """A coordinate (format_html formats its arguments as text, so numbers come formatted)."""
    return f"{value:.1f}"


def stacked_bars(*, buckets: Sequence[datetime], series: Sequence[Series], label: Callable[[datetime], str],
                 labelled: Callable[[datetime], bool], title: str, unit: str, width: int = WIDTH,
                 height: int = HEIGHT) -> SafeString:
    """One bar per bucket, its series stacked bottom to top in the order given, with a y axis of
    round numbers, a label under each bucket `labelled` says (round times: 12:10, 12:20) and under the
    newest, and a legend with each series' total."""
    count = len(buckets)
    totals = [sum(s.values[i] for s in series) for i in range(count)]
    top = nice_ceiling(max(totals, default=0))
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    slot = plot_w / max(count, 1)
    bar_w = max(1.0, slot * 0.8)

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * value / top

    grid = format_html_join("", (
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" stroke-opacity="0.15"/>'
        '<text x="{}" y="{}" text-anchor="end" font-size="10" fill="currentColor">{}</text>'),
        ((LEFT, width - RIGHT, _at(y(v)), _at(y(v)), LEFT - 4, _at(y(v) + 3), _number(v))
         for v in (0, top / 2, top)))
    bars = []
    for i, moment in enumerate(buckets):
        if not totals[i]:
            continue
        x, base, rects = LEFT + i * slot + (slot - bar_w) / 2, 0, []
        for s in series:
            value = s.values[i]
            if value:
                rects.append(format_html('<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>', _at(x),
                                         _at(y(base + value)), _at(bar_w), _at(y(base) - y(base + value)),
                                         s.colour))
                base += value
        tip = ", ".join(f"{s.values[i]:,} {s.label}" for s in series if s.values[i])
        bars.append(format_html("<g><title>{}: {}</title>{}</g>", label(moment), tip, joined(rects)))
    # Labels under the round buckets, and under the last one (the newest) kept inside the chart; a round
    # one too close to it (within 4% of the width) gives way.
    marked = [i for i, moment in enumerate(buckets)
              if labelled(moment) and (count - 1 - i) * slot >= width / 25]
    ticks = format_html_join("", '<text x="{}" y="{}" text-anchor="{}" font-size="10" '
                                 'fill="currentColor">{}</text>',
                             [(_at(LEFT + i * slot + slot / 2), height - 6, "middle", label(buckets[i]))
                              for i in marked]
                             + ([(width - RIGHT, height - 6, "end", label(buckets[-1]))] if count else []))
    empty = "" if any(totals) else format_html(
        '<text x="{}" y="{}" text-anchor="middle" font-size="12" fill="currentColor" opacity="0.6">'
        "nothing in this time</text>", _at(LEFT + plot_w / 2), _at(TOP + plot_h / 2))
    legend = format_html_join(" ", '<span class="console-legend"><span class="console-swatch" '
                                   'style="background:{}"></span>{} {}</span>',
                              ((s.colour, f"{sum(s.values):,}", s.label) for s in series))
    return format_html(
        '<figure class="console-chart"><svg viewBox="0 0 {w} {h}" width="100%" role="img" '
        'aria-label="{title}" preserveAspectRatio="xMidYMid meet">{grid}{bars}{ticks}{empty}</svg>'
        '<figcaption>{title} <span class="console-unit">({unit})</span><br>{legend}</figcaption></figure>',
        w=width, h=height, title=title, unit=unit, grid=grid, bars=joined(bars),
        ticks=ticks, empty=empty, legend=legend,
    )
