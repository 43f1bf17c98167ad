"""The cost scenario of scripts/benchmark.py (`--cost`): the same blocks uncached, cached, cached and
packed, and in batch mode, against the mock; cost ratios against the uncached run and output
mismatches by uid (apps.runs.reporting.compare.runs_compare).

    uv run python scripts/benchmark.py --cost [--concurrency 2]

The blocks: the 60 sample essays (samples/essays.jsonl) four times over, each copy a draft of its own
(240 essays), graded against a rubric of about 5,800 tokens as the system prompt (the sample rubric
and graded examples), with claude-haiku-4-5 (caches from 4,096 tokens). Costs are the mock's token
usage priced at the catalog's real rates; nothing is charged. The runs go through the real stack
(worker and beat), one after the other, each on a fresh key so that no run reads another's cache.
"""

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
ESSAYS = 240
RUBRIC_TOKENS = 5_800
PACK_SIZE = 8
PARALLELISM = 16
# Packs of 8 replies of up to 200 tokens each (the mock's longest default reply), as JSON.
MAX_TOKENS = 4000
TEMPLATE = "Grade this essay with the rubric: a score and one sentence of feedback.\n\nEssay:\n{input}"


def essays() -> list[tuple[str, str]]:
    """240 (uid, text): the 60 sample essays, each as four drafts."""
    lines = (SAMPLES / "essays.jsonl").read_text(encoding="utf-8").splitlines()
    samples = [json.loads(line) for line in lines if line.strip()]
    out = []
    for draft in range(1, ESSAYS // len(samples) + 2):
        for sample in samples:
            out.append((f"{sample['uid']}-d{draft}", f"{sample['input']} (Draft {draft}.)"))
    return out[:ESSAYS]


def rubric() -> str:
    """The sample rubric followed by graded examples, up to about RUBRIC_TOKENS (4 characters each)."""
    text = ("You are a careful teacher grading short student essays.\n\n"
            + (SAMPLES / "grading-rubric.md").read_text(encoding="utf-8") + "\n\n## Graded examples\n")
    samples = [json.loads(line) for line in (SAMPLES / "essays.jsonl").read_text().splitlines() if line]
    n = 0
    while len(text) < RUBRIC_TOKENS * 4:
        sample = samples[n % len(samples)]
        text += f"\nExample {n + 1} (score {1 + n % 6} of 6):\n{sample['input']}\n"
        n += 1
    return text[:RUBRIC_TOKENS * 4]


def batch_options() -> dict[str, Any]:
    """The batch row: cached, sent as Message Batches (batch mode sends one block per request, so
    packing does not apply; the batch discount stacks with caching)."""
    return {"cache": True, "pack_size": 1, "mode": "batch"}


def configurations() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("uncached", {"cache": False, "pack_size": 1}),
        ("cached", {"cache": True, "pack_size": 1}),
        (f"cached + packs of {PACK_SIZE}", {"cache": True, "pack_size": PACK_SIZE}),
        ("batch (cached)", batch_options()),
    ]


def secret(n: int) -> str:
    """The mock scopes its cache by API key: each run has a secret of its own, so that no run reads
    what an earlier one wrote."""
    return f"bench-cost-key-{n}"


def serve(user: Any, base_url: str, n: int, options: dict[str, Any], name: str, concurrency: int) -> Any:
    import time

    from apps.runs.serializers.inputs import RunOptionsSerializer, stored_options
    from apps.runs.services import BlockSpec, run_create
    from scripts.benchmark import MODEL, stack, wait_until_ended
    from tests.factories import make_key

    options = dict(options)
    mode = options.pop("mode", "live")
    checked = RunOptionsSerializer(data=options)
    checked.is_valid(raise_exception=True)
    key = make_key(user, base_url=base_url, secret=secret(n), label=f"bench-cost-{time.time_ns()}")
    with stack(concurrency):
        run = run_create(owner=user, key=key, model=MODEL, name=f"cost: {name}",
                         system_prompt=rubric(), prompt_template=TEMPLATE, max_tokens=MAX_TOKENS,
                         parallelism=PARALLELISM, options=stored_options(checked.validated_data), mode=mode,
                         blocks=(BlockSpec(uid=uid, input=text) for uid, text in essays()))
        wait_until_ended(run, timeout=3600)
    run.refresh_from_db()
    return run


def table(rows: list[tuple[str, Any, Any]]) -> list[str]:
    """rows: (label, run, comparison with the uncached run)."""
    from apps.runs.reporting.costs import run_cache_stats

    base = rows[0][1].cost_usd
    head = (f"{'configuration':<30} {'calls':>6} {'cost':>9} {'vs uncached':>12} {'hit rate':>9} "
            f"{'mismatches':>16}")
    lines = [head]
    for label, run, comparison in rows:
        hit = run_cache_stats(run).hit_rate
        parity = comparison.parity
        reference = run is rows[0][1]
        mismatches = "(reference)" if reference else f"{parity.mismatches.count} of {parity.compared}"
        cost = f"${run.cost_usd:.4f}"
        rate = "-" if hit is None else f"{100 * hit:.1f}%"
        lines.append(f"{label:<30} {comparison.b.calls:>6} {cost:>9} {float(run.cost_usd / base):>12.2f} "
                     f"{rate:>9} {mismatches:>16}")
    return lines


def scenario_cost(args: argparse.Namespace) -> list[str]:
    from apps.runs.caching import cacheable_prefix_tokens
    from apps.runs.reporting.compare import runs_compare
    from mock_provider.testing import running_mock_process
    from scripts.benchmark import bench_user

    user = bench_user("bench-cost")
    rows: list[tuple[str, Any, Any]] = []
    runs = configurations()
    with running_mock_process(api_keys=[secret(n) for n in range(len(runs))], latency_ms=50) as mock:
        for n, (label, options) in enumerate(runs):
            run = serve(user, mock.base_url, n, options, label, args.concurrency)
            comparison = runs_compare(rows[0][1], run) if rows else runs_compare(run, run)
            rows.append((label, run, comparison))
    first = rows[0][1]
    prefix = cacheable_prefix_tokens(first.call_spec, packed=False)
    intro = (f"{ESSAYS} essays, a {prefix:,}-token cacheable prefix (rubric as system prompt), "
             f"{first.model}, parallelism {PARALLELISM}; mismatches: outputs that differ, by uid, "
             "from the uncached run's")
    return [f"cost      {line}" for line in (intro, *table(rows))]
