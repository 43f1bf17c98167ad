"""`manage.py compare RUN_A RUN_B [--json] [--limit N]`: two runs side by side.

What each cost (per block, by kind of token, with and without caching and packing), its cache hit
rate and calls, and whether the two gave the same answers, uid by uid (apps.runs.reporting.compare). The same
report as `GET /api/v1/runs/{a}/compare/{b}/`; `--json` prints that API's body.
"""

import json
from typing import Any

from django.core.management.base import CommandParser

from apps.core.formatting import format_usd
from apps.runs.management.commandline import OperatorCommand, at_least_one, run_named
from apps.runs.reporting.compare import Parity, RunComparison, RunSide, UidList, runs_compare
from apps.runs.serializers.outputs import RunCompareSerializer

ROW = "  {label:<28} {a:>22}  {b:>22}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _configuration(side: RunSide) -> str:
    options = side.run.options or {}
    cache = "cache on" if options.get("cache") else "cache off"
    return f"{cache}, {side.run.pack_size}/call, {options.get('mode', 'live')}"


def _uids(uid_list: UidList) -> str:
    more = uid_list.count - len(uid_list.uids)
    return ", ".join(uid_list.uids) + (f" ... and {more:,} more" if more > 0 else "")


def describe_parity(parity: Parity) -> list[str]:
    lines = [f"parity by uid: {parity.compared:,} compared, {parity.exact_matches:,} exact matches, "
             f"{parity.mismatches.count:,} mismatches"
             + (" (identical)" if parity.identical else "")]
    for label, uid_list in (("mismatches", parity.mismatches), ("not succeeded in both", parity.not_compared),
                            ("only in A", parity.only_in_a), ("only in B", parity.only_in_b)):
        if uid_list.count:
            lines.append(f"  {label} ({uid_list.count:,}): {_uids(uid_list)}")
    if len(parity.by_models) > 1:  # answered by different models (a fallback): each pair of models apart
        lines.append("  by the models that answered (A | B): exact matches of compared")
        for models, counts in sorted(parity.by_models.items()):
            lines.append(f"    {models}: {counts['exact_matches']:,}/{counts['compared']:,}")
    if parity.json_objects:
        lines.append(f"  JSON objects in both: {parity.json_objects:,}; per field, matches:")
        for name, stats in sorted(parity.fields.items()):
            differs = f"; differs: {_uids(stats.differs)}" if stats.differs.count else ""
            lines.append(f"    {name:<24} {stats.matches:,}/{parity.json_objects:,}{differs}")
        if parity.fields_untracked:
            lines.append(f"    ({parity.fields_untracked:,} pairs had fields beyond the first 100 names)")
    if parity.metadata:
        lines.append("  metadata of the uids listed:")
        for uid, metadata in parity.metadata.items():
            text = json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))
            lines.append(f"    {uid}: {text if len(text) <= 100 else text[:99] + '…'}")
    return lines


def describe_comparison(comparison: RunComparison) -> str:
    a, b = comparison.a, comparison.b
    ratio = comparison.cost_ratio

    def row(label: str, value: Any) -> str:
        return ROW.format(label=label, a=value(a), b=value(b))

    lines = [
        ROW.format(label="", a="A", b="B"),
        row("run", lambda s: f"{str(s.run.pk)[:8]} {s.run.name[:13]}".strip()),
        row("model", lambda s: s.run.model),
        row("configuration", _configuration),
        row("status", lambda s: f"{s.run.status} {s.run.completed_blocks}/{s.run.total_blocks}"),
        row("cost", lambda s: format_usd(s.cost_usd)),
        row("cost per block", lambda s: format_usd(s.cost_per_block_usd)
            if s.cost_per_block_usd is not None else "-"),
        row("tokens in", lambda s: f"{s.tokens['input']:,}"),
        row("tokens out", lambda s: f"{s.tokens['output']:,}"),
        row("cache write", lambda s: f"{s.tokens['cache_write']:,}"),
        row("cache read", lambda s: f"{s.tokens['cache_read']:,}"),
        row("cache hit rate", lambda s: _rate(s.cache.hit_rate) + (" (no hits!)" if s.cache.not_hitting
                                                                   else "")),
        row("calls (not succeeded)", lambda s: f"{s.calls:,} ({s.calls_not_succeeded:,})"),
        row("attempts", lambda s: f"{s.attempts:,}"),
        row("without caching", lambda s: format_usd(s.savings.uncached_usd)),
        row("without caching or packing", lambda s: format_usd(s.savings.unpacked_uncached_usd)),
        row("at live prices", lambda s: format_usd(s.savings.live_usd)),
        "",
        f"B cost {ratio:.3f} of A" if ratio is not None else "A cost nothing: no cost ratio",
        *describe_parity(comparison.parity),
    ]
    return "\n".join(lines)


class Command(OperatorCommand):
    help = "Compare two runs: cost, tokens, cache hit rate, calls, and output parity by uid."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_a")
        parser.add_argument("run_b")
        parser.add_argument("--json", action="store_true", help="the API's JSON body")
        parser.add_argument("--limit", type=at_least_one, default=50,
                            help="uids listed per list (default 50)")

    def handle(self, *args: Any, **opts: Any) -> None:
        run_a, run_b = run_named(opts["run_a"]), run_named(opts["run_b"])
        comparison = runs_compare(run_a, run_b, limit=opts["limit"])
        if opts["json"]:
            self.stdout.write(json.dumps(RunCompareSerializer(comparison.as_dict()).data, indent=2))
        else:
            self.stdout.write(describe_comparison(comparison))
