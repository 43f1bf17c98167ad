"""Everything one mock server remembers, in one object owned by its event loop.

All handlers run on that single loop, so none of this needs locks; other threads (tests, the
command) reach it only through HTTP (`/_mock/...`), never by touching these objects directly.
"""

import random
import time

from mock_provider.batches import BatchStore
from mock_provider.cache import PrefixCache
from mock_provider.config import MockConfig
from mock_provider.faults import FaultCounters, RandomFaults
from mock_provider.ratelimit import RateLimiter
from mock_provider.stats import Stats


class MockClock:
    """The mock's time: real time plus an offset that tests move forward, so cache TTLs and
    rate-limit refills and message batches can be tested without sleeping. Subclass it to drive time
    entirely by hand."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.monotonic() + self.offset

    def wall(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset += seconds

    def reset(self) -> None:
        self.offset = 0.0


class MockState:
    def __init__(self, config: MockConfig, clock: MockClock | None = None) -> None:
        self.clock = clock or MockClock()
        self.config = config
        self.cache = PrefixCache(self.clock.now)
        self.limiter = RateLimiter(rpm=config.rpm, itpm=config.itpm, otpm=config.otpm,
                                   burst_seconds=config.burst_seconds, clock=self.clock.now,
                                   wall=self.clock.wall)
        self.counters = FaultCounters()
        self.random_faults = RandomFaults(config.fault_rates, config.seed)
        # Batch requests draw from a generator of their own, so batch traffic never shifts the faults
        # a seed gives /v1/messages (and the other way round).
        self.batch_faults = RandomFaults(config.fault_rates, config.seed)
        self.batches = BatchStore()
        self.stats = Stats()
        # Latency jitter draws from a generator of its own, so it never shifts the seeded faults.
        self.latency_random = random.Random(config.seed)
        self._seq = 0

    def reply_latency_ms(self) -> float:
        """This reply's fixed latency: latency_ms, spread uniformly by latency_jitter_ms."""
        base, jitter = self.config.latency_ms, self.config.latency_jitter_ms
        if not jitter:
            return base
        return max(0.0, base + self.latency_random.uniform(-jitter, jitter))

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def configure(self, changes: dict[str, object]) -> MockConfig:
        old, new = self.config, self.config.updated(changes)
        self.config = new
        limits = ("rpm", "itpm", "otpm", "burst_seconds")
        if any(getattr(old, name) != getattr(new, name) for name in limits):
            self.limiter.reconfigure(rpm=new.rpm, itpm=new.itpm, otpm=new.otpm,
                                     burst_seconds=new.burst_seconds)
        if (old.fault_rates, old.seed) != (new.fault_rates, new.seed):
            self.random_faults = RandomFaults(new.fault_rates, new.seed)
            self.batch_faults = RandomFaults(new.fault_rates, new.seed)
        return new

    def reset(self) -> None:
        """Forget everything but the configuration: counters, log, cache, fault counts, buckets, the
        random sequences (re-seeded), message batches and any clock advance."""
        self.cache.clear()
        self.batches.clear()
        self.limiter.clear()
        self.counters.clear()
        self.random_faults = RandomFaults(self.config.fault_rates, self.config.seed)
        self.batch_faults = RandomFaults(self.config.fault_rates, self.config.seed)
        self.latency_random = random.Random(self.config.seed)
        # Requests still in flight will finish into the new counters; keep their count right.
        self.stats = Stats(in_flight=self.stats.in_flight, peak_in_flight=self.stats.in_flight)
        self.clock.reset()
