"""What the realistic scenario's systems share: the blocks' text, and how a peer process talks to the
benchmark (pure standard library: the LiteLLM peer imports it from a virtualenv of its own).

A peer prints `ready` once its imports are done and its client is built, waits for one line on
stdin before it starts (so the benchmark's CPU and memory baselines leave out its start-up), then
prints one JSON line: {"ok": calls answered, "failed": blocks failed after the client's retries,
"errors": {exception type: count}, "elapsed": seconds}.
"""

import argparse
import json
import resource
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable

CHARS_PER_TOKEN = 4  # the mock's rule (mock_provider/tokens.py)


def block_text(i: int, input_tokens: int, output_tokens: int) -> str:
    """Block i's input: `input_tokens` tokens by the mock's count, each block distinct, asking the mock
    for a reply of `output_tokens` (below max_tokens: a reply cut at max_tokens is a failed block)."""
    head = f"[[mock:output_tokens={output_tokens}]] block {i:09d} "
    return head + "x" * max(0, input_tokens * CHARS_PER_TOKEN - len(head))


def parse_peer_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--blocks", type=int, required=True)
    parser.add_argument("--parallelism", type=int, required=True)
    parser.add_argument("--input-tokens", type=int, required=True)
    parser.add_argument("--max-tokens", type=int, required=True)
    parser.add_argument("--output-tokens", type=int, required=True)
    parser.add_argument("--rpm", type=int, default=0)
    parser.add_argument("--tpm", type=int, default=0)
    return parser.parse_args(argv)


def raise_open_files_limit() -> None:
    """A thousand sockets need more than the common soft limit of 1,024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def run_peer(blocks: int, call: Callable[[int], Awaitable[object]]) -> None:
    """Announce readiness, wait for the go, call once per block (the caller bounds concurrency), report."""
    print("ready", flush=True)
    sys.stdin.readline()
    import asyncio

    errors: Counter[str] = Counter()

    async def one(i: int) -> bool:
        try:
            await call(i)
            return True
        except Exception as exc:  # a failed block is what we count
            errors[type(exc).__name__] += 1
            return False

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(blocks)))
    elapsed = time.perf_counter() - started
    ok = sum(results)
    print(json.dumps({"ok": ok, "failed": blocks - ok, "errors": dict(errors), "elapsed": elapsed}),
          flush=True)
