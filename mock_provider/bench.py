"""Measure the mock's throughput, so we know it is never the bottleneck of a benchmark.

    uv run python -m mock_provider.bench [--requests 20000] [--concurrency 100] [--url URL]

Starts `manage.py mock_provider --port 0` in its own process (unless --url is given) with no latency,
then sends non-streaming and streaming /v1/messages requests from this process, first with a raw
aiohttp client (the mock's own ceiling), then with AsyncAnthropic (what a worker actually sees, where
the SDK's own cost per call dominates). Prints requests per second for each, the client's CPU time per
request and, when it started the mock itself, the mock's: capacity per core, whatever else shares the
machine.
"""

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import anthropic

from mock_provider.testing import TEST_API_KEY, running_mock_process

MODEL = "claude-haiku-4-5"
HEADERS = {"x-api-key": TEST_API_KEY, "anthropic-version": "2026-10-21", "content-type": "application/json"}


def _body(i: int, stream: bool) -> dict[str, object]:
    return {"model": MODEL, "max_tokens": 200, "stream": stream,
            "messages": [{"role": "user", "content": f"Benchmark block number {i}: some text to answer."}]}


async def _run(total: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


async def raw_rate(base_url: str, total: int, concurrency: int, stream: bool) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=HEADERS) as session:
        async def one(i: int) -> None:
            async with session.post(base_url + "/v1/messages", data=json.dumps(_body(i, stream))) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"status {response.status}")

        return await _run(total, concurrency, one)


async def sdk_rate(base_url: str, total: int, concurrency: int, stream: bool) -> float:
    async with anthropic.AsyncAnthropic(api_key=TEST_API_KEY, base_url=base_url, max_retries=0) as client:
        async def one(i: int) -> None:
            params = _body(i, False)
            del params["stream"]
            if stream:
                async with client.messages.stream(**params) as s:  # type: ignore[arg-type]
                    await s.get_final_message()
            else:
                await client.messages.create(**params)  # type: ignore[call-overload]

        return await _run(total, concurrency, one)


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None where that is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(base_url: str, total: int, concurrency: int, pid: int | None = None) -> None:
    for label, rate_of, share in (("raw aiohttp", raw_rate, 1), ("AsyncAnthropic", sdk_rate, 4)):
        for stream in (False, True):
            count = max(concurrency, total // share)
            cpu_before, client_before = cpu_seconds(pid), time.process_time()
            rate = await rate_of(base_url, count, concurrency, stream)
            cpu_after, client_cpu = cpu_seconds(pid), (time.process_time() - client_before) / count
            kind = "stream" if stream else "json"
            line = (f"{label:14} {kind:6} {count:5} requests, {concurrency} concurrent: {rate:5.0f} req/s; "
                    f"client CPU {client_cpu * 1e6:4.0f} us/req")
            if cpu_before is not None and cpu_after is not None and cpu_after > cpu_before:
                per_request = (cpu_after - cpu_before) / count
                line += f"; mock CPU {per_request * 1e6:4.0f} us/req = {1 / per_request:4.0f} req/s/core"
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100,
                        help="100 is the SDK's keep-alive pool: beyond it, it reconnects per request")
    parser.add_argument("--url", help="an already running mock; default: start one")
    args = parser.parse_args()
    if args.url:
        asyncio.run(measure(args.url, args.requests, args.concurrency))
        return
    with running_mock_process() as mock:
        asyncio.run(measure(mock.base_url, args.requests, args.concurrency,
                            mock.process.pid if mock.process else None))
        print("mock saw:", mock.stats(limit=0)["by_status"])


if __name__ == "__main__":
    main()
