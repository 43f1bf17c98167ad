"""Time series of the benchmark's scenarios, and the figure `scripts/benchmark.py --plot out.png` draws.

While a scenario runs, a Sampler thread looks about four times a second at
  - the database: blocks ended (succeeded, failed, canceled) across the runs created since it started;
  - the mock provider in use (`/_mock/stats`): calls in flight, and responses so far by status.
Counts become rates over a short window (so one batch of results is not a spike). A scenario may use
several mocks one after the other (overload runs two); each mock's counters start at zero, so rates
are only taken between samples of the same mock.

The figure has one row per scenario: throughput (blocks/s, and the mock's answered calls/s, which
also shows the plain-asyncio phases of `overhead`), calls in flight, and refusals (429 and 529 per s).
"""

import threading
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAMPLE_SECONDS = 0.25
RATE_WINDOW_SECONDS = 1.0


@dataclass
class Sample:
    t: float  # seconds since the scenario started
    blocks_done: int | None
    mock: str | None = None  # the mock's base_url: counters compare only within one mock
    in_flight: int | None = None
    by_status: dict[str, int] = field(default_factory=dict)


@dataclass
class Series:
    """What the figure draws for one scenario; rates per second, None where nothing was measured."""

    t: list[float]
    blocks_per_s: list[float | None]
    calls_per_s: list[float | None]
    in_flight: list[float | None]
    refused_429_per_s: list[float | None]
    refused_529_per_s: list[float | None]


def _rate(samples: list[Sample], i: int, value: Any, window: float) -> float | None:
    """The rate of `value(sample)` at sample i, against the oldest sample within `window` before it
    that has a value and the same mock."""
    now = samples[i]
    current = value(now)
    if current is None:
        return None
    oldest = None
    for j in range(i - 1, -1, -1):
        then = samples[j]
        if now.t - then.t > window:
            break
        if then.mock == now.mock and value(then) is not None:
            oldest = then
    if oldest is None or oldest.t >= now.t:
        return None
    return (current - value(oldest)) / (now.t - oldest.t)


def to_series(samples: list[Sample], *, window: float = RATE_WINDOW_SECONDS) -> Series:
    def status(code: str) -> Any:
        return lambda s: s.by_status.get(code, 0) if s.mock is not None else None

    def rates(value: Any) -> list[float | None]:
        return [_rate(samples, i, value, window) for i in range(len(samples))]

    return Series(
        t=[s.t for s in samples],
        blocks_per_s=rates(lambda s: s.blocks_done),
        calls_per_s=rates(status("200")),
        in_flight=[s.in_flight for s in samples],
        refused_429_per_s=rates(status("429")),
        refused_529_per_s=rates(status("529")),
    )


class Sampler:
    """Samples in a thread while a scenario runs: `with Sampler() as sampler: ...; sampler.series()`.
    The scenario tells it which mock it uses with `watch(mock)` (scripts/benchmark.py's bench_mock)."""

    def __init__(self, interval: float = SAMPLE_SECONDS) -> None:
        self.interval = interval
        self.samples: list[Sample] = []
        self._mock: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)

    def watch(self, mock: Any) -> None:
        self._mock = mock

    def __enter__(self) -> "Sampler":
        from django.utils import timezone

        self._since = timezone.now()
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def series(self) -> Series:
        return to_series(self.samples)

    def _blocks_done(self) -> int:
        from django.db.models import F, Sum

        from apps.runs.models import Run

        ended = F("completed_blocks") + F("failed_blocks") + F("canceled_blocks")
        return Run.objects.filter(created_at__gte=self._since).aggregate(n=Sum(ended))["n"] or 0

    def _loop(self) -> None:
        from django.db import connection

        try:
            while not self._stop.is_set():
                self.samples.append(self._sample())
                self._stop.wait(self.interval)
        finally:
            connection.close()

    def _sample(self) -> Sample:
        sample = Sample(t=time.monotonic() - self._started, blocks_done=self._blocks_done())
        mock = self._mock
        if mock is not None:
            try:
                stats = mock.stats(limit=0)
            except (urllib.error.URLError, OSError, ValueError):  # stopping, or not up yet
                return sample
            sample.mock, sample.in_flight = mock.base_url, stats["in_flight"]
            sample.by_status = {code: int(n) for code, n in stats["by_status"].items()}
        return sample


def plot_scenarios(series: dict[str, Series], path: str | Path) -> Path:
    """One figure, a row per scenario: throughput, calls in flight, refusals; written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, len(series))
    fig, axes = plt.subplots(rows, 3, figsize=(16, 3.4 * rows), squeeze=False)
    for row, (name, s) in zip(axes, series.items(), strict=False):
        throughput, in_flight, refused = row
        throughput.plot(s.t, _nan(s.blocks_per_s), label="blocks/s (database)", color="tab:blue")
        throughput.plot(s.t, _nan(s.calls_per_s), label="answered calls/s (mock, 200)", color="tab:green",
                        linestyle="--", linewidth=1)
        throughput.set_title(f"{name}: throughput", loc="left")
        throughput.set_ylabel("per second")
        in_flight.plot(s.t, _nan(s.in_flight), color="tab:orange")
        in_flight.set_title(f"{name}: calls in flight (mock)", loc="left")
        refused.plot(s.t, _nan(s.refused_429_per_s), label="429/s", color="tab:red")
        refused.plot(s.t, _nan(s.refused_529_per_s), label="529/s", color="tab:purple")
        refused.set_title(f"{name}: refusals", loc="left")
        refused.set_ylabel("per second")
        for ax in row:
            ax.set_xlabel("seconds since the scenario started")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
        throughput.legend(loc="upper right", fontsize="small")
        refused.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    target = Path(path)
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target


def _nan(values: list[float | None]) -> list[float]:
    """Gaps where nothing was measured (matplotlib leaves NaN out of a line)."""
    return [float("nan") if v is None else v for v in values]
