"""Command-line options and the foreground server loop, shared by `manage.py mock_provider` and
`python -m mock_provider`.

The second skips Django's startup (which imports every app and with it the whole `anthropic` package,
several seconds on a busy machine): it is what `running_mock_process` starts by default, so end-to-end
tests do not wait for it. Both accept the same flags and print the same `listening on URL` line.
"""

import argparse
import asyncio
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mock_provider.config import MockConfig, parse_fault_rates
from mock_provider.server import MockServer

DEFAULT_PORT = 8765
# --fault-rate-<kind> flags, one per kind a soak run usually wants; --fault-rates takes any kind.
FAULT_FLAGS = ("429", "429-no-retry-after", "529", "500", "504", "hang", "drop", "stream-error")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="before each reply starts")
    parser.add_argument("--latency-per-token-ms", type=float, default=0.0,
                        help="per output token; streams are paced at this rate")
    parser.add_argument("--latency-jitter-ms", type=float, default=0.0,
                        help="each reply's latency drawn uniformly from latency-ms +- this")
    parser.add_argument("--rpm", type=int, help="requests per minute per API key")
    parser.add_argument("--itpm", type=int, help="input tokens per minute per API key")
    parser.add_argument("--otpm", type=int, help="output tokens per minute per API key")
    parser.add_argument("--burst-seconds", type=float, default=MockConfig.burst_seconds,
                        help="a limited bucket holds this many seconds of its per-minute limit (1)")
    parser.add_argument("--fault-rates", default="",
                        help='probabilities per request, e.g. "429=0.01,529=0.02,hang=0.001"')
    for kind in FAULT_FLAGS:
        parser.add_argument(f"--fault-rate-{kind}", type=float, dest=f"fault_rate_{kind.replace('-', '_')}",
                            help=f"probability of a random {kind} per request")
    parser.add_argument("--fault-retry-after", type=int, default=1, help="retry-after seconds on random 429s")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random faults")
    parser.add_argument("--api-key", action="append", default=[], dest="api_keys",
                        help="a valid key (repeatable); none: any non-empty key is valid")
    parser.add_argument("--max-body-bytes", type=int, default=MockConfig.max_body_bytes)
    parser.add_argument("--hang-seconds", type=float, default=MockConfig.hang_seconds)
    parser.add_argument("--batch-delay-ms", type=float, default=MockConfig.batch_delay_ms,
                        help="time a message batch takes from creation to its last request")
    parser.add_argument("--batch-expire-after-s", type=float, default=MockConfig.batch_expire_after_s,
                        help="seconds after which a batch's unfinished requests expire (86400)")
    parser.add_argument("--batch-max-requests", type=int, default=MockConfig.batch_max_requests)
    parser.add_argument("--batch-max-body-bytes", type=int, default=MockConfig.batch_max_body_bytes)


def config_from_options(options: Mapping[str, Any]) -> MockConfig:
    """Raises ValueError on a bad value, for the caller to report as a usage error."""
    rates = parse_fault_rates(options["fault_rates"])
    for kind in FAULT_FLAGS:
        value = options[f"fault_rate_{kind.replace('-', '_')}"]
        if value is not None:
            rates[kind.replace("-", "_")] = value
    return MockConfig(
        latency_ms=options["latency_ms"], latency_per_token_ms=options["latency_per_token_ms"],
        latency_jitter_ms=options["latency_jitter_ms"], burst_seconds=options["burst_seconds"],
        rpm=options["rpm"], itpm=options["itpm"], otpm=options["otpm"], fault_rates=rates,
        fault_retry_after=options["fault_retry_after"], seed=options["seed"],
        api_keys=frozenset(options["api_keys"]), max_body_bytes=options["max_body_bytes"],
        hang_seconds=options["hang_seconds"], batch_delay_ms=options["batch_delay_ms"],
        batch_expire_after_s=options["batch_expire_after_s"],
        batch_max_requests=options["batch_max_requests"],
        batch_max_body_bytes=options["batch_max_body_bytes"],
    )


async def serve_until_signalled(server: MockServer, host: str, port: int,
                                write: Callable[[str], None]) -> None:
    """Serve until SIGINT or SIGTERM, announcing the URL first (scripts wait for that line)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def ready(base_url: str) -> None:
        config = server.state.config
        keys = f"{len(config.api_keys)} valid key(s)" if config.api_keys else "any non-empty key"
        write(f"Mock Anthropic API listening on {base_url} ({keys}; control API at {base_url}/_mock/stats)")

    await server.serve(host, port, ready=ready, stop=stop)
    write("Mock Anthropic API stopped")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mock_provider",
                                     description="Serve a mock of the Anthropic Messages API.")
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    try:
        config = config_from_options(options)
    except ValueError as exc:
        parser.error(str(exc))
    asyncio.run(serve_until_signalled(MockServer(config), options["host"], options["port"],
                                      lambda line: print(line, flush=True)))
