"""CPU and memory of the processes a benchmark starts, read from /proc (Linux).

Each system under test is started in a session of its own (`start_new_session=True`), so its
processes are the ones whose session id is its leader's pid: a Celery worker's pool processes count
with it, whatever they are named. A thread samples every session a few times a second; what a
process used is the last sample it was seen in (a process that ends between two samples loses at most
one interval's CPU).
"""

import os
import resource
import threading
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    session: int
    cpu_seconds: float
    rss_bytes: int


def parse_stat(pid: int, text: str) -> ProcStat:
    """One /proc/PID/stat line; the command name may hold spaces and parentheses, so split after it."""
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state) of proc(5): session is 6, utime 14, stime 15, rss 24.
    return ProcStat(pid=pid, session=int(fields[3]),
                    cpu_seconds=(int(fields[11]) + int(fields[12])) / TICKS, rss_bytes=int(fields[21]) * PAGE)


def processes(sessions: set[int], proc: Path = Path("/proc")) -> list[ProcStat]:
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = parse_stat(int(entry.name), (entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue  # ended while we read it
        if stat.session in sessions:
            found.append(stat)
    return found


@dataclass
class Usage:
    cpu_seconds: float = 0.0
    baseline_rss: int = 0
    peak_rss: int = 0


@dataclass
class SessionMeter:
    """Sample the sessions of `leaders` from `start()` (the baseline: CPU and RSS then are not
    counted) until `stop()`."""

    leaders: list[int]
    interval: float = 0.25
    _cpu: dict[int, float] = field(default_factory=dict)
    _baseline_cpu: float = 0.0
    _usage: Usage = field(default_factory=Usage)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> int:
        stats = processes(set(self.leaders))
        for stat in stats:
            self._cpu[stat.pid] = stat.cpu_seconds
        rss = sum(stat.rss_bytes for stat in stats)
        self._usage.peak_rss = max(self._usage.peak_rss, rss)
        return rss

    def start(self) -> "SessionMeter":
        self._usage.baseline_rss = self._usage.peak_rss = self._sample()
        self._baseline_cpu = sum(self._cpu.values())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> Usage:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self._usage.cpu_seconds = sum(self._cpu.values()) - self._baseline_cpu
        return self._usage


def rss_mb() -> float:
    """This process's resident set now, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    """This process's peak resident set so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
