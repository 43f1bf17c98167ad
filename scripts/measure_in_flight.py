"""Memory per provider call in flight in one asyncio process, as a serving loop holds them: calls
through the SDK clients Conveyor builds (apps/runs/serving/calls.py ClientPool, sized for the calls)
against the mock with a long latency, so every call is waiting at once.

    uv run python scripts/measure_in_flight.py [--calls 1000 2000] [--latency-ms 20000]

The mock runs in its own process. For each count, the process's resident set is read (/proc) before
the calls start and once they are all in flight; the difference over the count is the memory one
call in flight costs (its socket, the HTTP client's connection and request, the SDK's coroutine and
the serving loop's task). Then the calls are cancelled. Nothing touches the database."""

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ["DEBUG"] = "false"
# The mock listens on this machine: calls may go there.
os.environ.setdefault("PROVIDER_HOST_ALLOWLIST", "127.0.0.1,localhost")


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def hold(calls: int, base_url: str) -> tuple[int, float]:
    from apps.lanes.gate import LaneRef
    from apps.lanes.limits import Limits
    from apps.providers.client import call_messages
    from apps.providers.prompts import CallSpec
    from apps.runs.serving.calls import ClientPool
    from apps.runs.serving.context import RunContext

    ctx = RunContext(run_id="measure", owner_id=1, key_id=1, key_revision=1, current_pass=1,
                     spec=CallSpec(model="claude-haiku-4-5", system_prompt="", prompt_template="{input}",
                                   max_tokens=64),
                     pack_size=1, lane=LaneRef(1, "haiku"), limits=Limits(), api_key="sk-measure",
                     base_url=base_url)
    pool = ClientPool()
    pool.size(1, calls)
    params = {"model": "claude-haiku-4-5", "max_tokens": 64,
              "messages": [{"role": "user", "content": "x" * 1600}]}
    before = rss_kb()
    tasks = [asyncio.create_task(call_messages(pool.get(ctx), params, stream=False, secrets=(),
                                               headers={})) for _ in range(calls)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # every call has its connection and its request sent
        await asyncio.sleep(0.5)
        if len(os.listdir("/proc/self/fd")) >= calls:
            await asyncio.sleep(2)
            break
    after = rss_kb()
    fds = len(os.listdir("/proc/self/fd"))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await pool.close()
    return fds, (after - before) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, nargs="+", default=[1000, 2000])
    parser.add_argument("--latency-ms", type=float, default=20_000)
    args = parser.parse_args()

    import django
    django.setup()
    from apps.runs.serving.process import prepare_process_for_serving
    from mock_provider.testing import running_mock_process

    prepare_process_for_serving()  # the open-files limit raised, as a worker's pool process does
    with running_mock_process(latency_ms=args.latency_ms) as mock:
        for calls in args.calls:
            fds, per_call_kb = asyncio.run(hold(calls, mock.base_url))
            print(f"{calls:>6} calls in flight: {fds} open files, {per_call_kb:.1f} KB of RSS per call")


if __name__ == "__main__":
    main()
