"""Two runs side by side: what each cost and whether they gave the same answers (`runs_compare`).

The use: prove that a cheaper configuration (caching, packing, batch mode, another model) answered
as the plain one did, as the origin system's paired cache-off/cache-on benchmark did. What the
API's `runs/{a}/compare/{b}/`, `manage.py compare` and the cost benchmark report.

Per run: cost, cost per block (per succeeded block: what a result cost), tokens by kind (the run's
own counters), cache hit rate (apps.runs.reporting.costs.CacheStats), provider calls and attempts, savings.

Parity, by uid (blocks are matched by uid, not position): a uid in both runs whose blocks both
succeeded is *compared*; it is an exact match when the outputs are the same text (for two structured
answers, `output_json`: the same document, whatever its spacing), else a mismatch. For compared outputs
that are both JSON objects (structured answers, or text that parses as one), each field is compared as
a JSON value (key order and spacing do not matter; `4` and `4.0` differ): field -> how many pairs
match, and the uids where it differs or is missing on one side. A structured answer's nested objects
are compared field by field too (`author.name`); a plain text's object by its top-level keys. Every
uid list is bounded (`limit`) and comes with its full count, and every uid listed comes with its
block's metadata (`metadata`: uid -> the block's own fields, from A, else B).

Blocks are streamed: run A in block_index order, a chunk at a time, each chunk's counterparts in B
fetched by uid (the (run, uid) unique index); uids only in B are found by one anti-join. Memory is
a chunk of each run, whatever their size.
"""

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count

from apps.runs.models import Attempt, Block, BlockStatus, Run
from apps.runs.reporting.costs import CacheStats, Savings, run_cache_stats, run_savings, run_usage
from apps.runs.selectors import run_call_counts

CHUNK_SIZE = 2000
UID_LIMIT = 50
# Distinct JSON field names followed at most; outputs with more are counted, not listed by field.
MAX_FIELDS = 100
MONEY = Decimal("0.00000001")


@dataclass
class UidList:
    """A count and the first `limit` uids counted (in run A's block order)."""

    limit: int = UID_LIMIT
    count: int = 0
    uids: list[str] = field(default_factory=list)

    def add(self, uid: str) -> bool:
        """Count the uid; True when it is listed (among the first `limit`)."""
        self.count += 1
        if len(self.uids) < self.limit:
            self.uids.append(uid)
            return True
        return False

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "uids": self.uids, "truncated": self.count > len(self.uids)}


@dataclass
class FieldParity:
    matches: int = 0
    differs: UidList = field(default_factory=UidList)

    def as_dict(self) -> dict[str, Any]:
        return {"matches": self.matches, "differs": self.differs.as_dict()}


@dataclass
class Parity:
    limit: int = UID_LIMIT
    compared: int = 0
    exact_matches: int = 0
    mismatches: UidList = field(default_factory=UidList)
    # In both runs, but not succeeded in one or both: nothing to compare.
    not_compared: UidList = field(default_factory=UidList)
    only_in_a: UidList = field(default_factory=UidList)
    only_in_b: UidList = field(default_factory=UidList)
    # Compared pairs whose outputs both parse as JSON objects, and their fields.
    json_objects: int = 0
    fields: dict[str, FieldParity] = field(default_factory=dict)
    # Field names seen beyond MAX_FIELDS: compared pairs with such a field are counted here.
    fields_untracked: int = 0
    # The metadata of every uid listed, by uid (blocks that have metadata).
    metadata: dict[str, Any] = field(default_factory=dict)
    # Compared pairs by the models that answered them ("A's model | B's model"): how a run's fallback
    # answers (issue 22) compare with a run of the primary model over the same blocks.
    by_models: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for uid_list in (self.mismatches, self.not_compared, self.only_in_a, self.only_in_b):
            uid_list.limit = self.limit

    @property
    def identical(self) -> bool:
        """Every block of either run is in both, succeeded in both, with the same output."""
        return (self.mismatches.count == self.not_compared.count == self.only_in_a.count
                == self.only_in_b.count == 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "compared": self.compared, "exact_matches": self.exact_matches,
            "mismatches": self.mismatches.as_dict(), "not_compared": self.not_compared.as_dict(),
            "only_in_a": self.only_in_a.as_dict(), "only_in_b": self.only_in_b.as_dict(),
            "identical": self.identical, "json_objects": self.json_objects,
            "fields": {name: f.as_dict() for name, f in sorted(self.fields.items())},
            "fields_untracked": self.fields_untracked, "metadata": self.metadata,
            "by_models": {pair: dict(counts) for pair, counts in sorted(self.by_models.items())},
        }

    def note(self, listed: bool, uid: str, metadata: Any) -> None:
        """Keep a listed uid's metadata beside the lists."""
        if listed and metadata is not None:
            self.metadata.setdefault(uid, metadata)


@dataclass(frozen=True)
class RunSide:
    """One run's figures in a comparison."""

    run: Run
    cost_usd: Decimal
    cost_per_block_usd: Decimal | None
    tokens: dict[str, int]
    cache: CacheStats
    calls: int
    calls_not_succeeded: int
    attempts: int
    savings: Savings

    def as_dict(self) -> dict[str, Any]:
        run = self.run
        options = run.options or {}
        return {
            "id": str(run.pk), "name": run.name, "model": run.model, "status": run.status,
            "cache": bool(options.get("cache")), "pack_size": run.pack_size,
            "mode": options.get("mode", "live"),
            "blocks": {"total": run.total_blocks, "succeeded": run.completed_blocks,
                       "failed": run.failed_blocks, "canceled": run.canceled_blocks},
            "cost_usd": str(self.cost_usd),
            "cost_per_block_usd": None if self.cost_per_block_usd is None else str(self.cost_per_block_usd),
            "tokens": self.tokens, "cache_hit_rate": self.cache.hit_rate,
            "cache_not_hitting": self.cache.not_hitting, "calls": self.calls,
            "calls_not_succeeded": self.calls_not_succeeded, "attempts": self.attempts,
            "savings": self.savings.as_dict(),
        }


@dataclass(frozen=True)
class RunComparison:
    a: RunSide
    b: RunSide
    parity: Parity

    @property
    def cost_ratio(self) -> float | None:
        """B's cost as a share of A's (0.05: B cost a twentieth of A)."""
        return float(self.b.cost_usd / self.a.cost_usd) if self.a.cost_usd else None

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a.as_dict(), "b": self.b.as_dict(), "cost_ratio": self.cost_ratio,
                "parity": self.parity.as_dict()}


def run_side(run: Run) -> RunSide:
    """Cost and tokens as the run counts them (everything charged to it, kept by the engine with each
    result); savings and the hit rate from its calls (apps.runs.reporting.costs)."""
    usage = run_usage(run)
    savings = run_savings(run, usage=usage)
    calls = run_call_counts(run_id=run.pk)
    cost = run.cost_usd
    per_block = (cost / run.completed_blocks).quantize(MONEY) if run.completed_blocks else None
    tokens = {"input": run.input_tokens, "output": run.output_tokens,
              "cache_write": run.cache_creation_input_tokens, "cache_read": run.cache_read_input_tokens}
    return RunSide(run=run, cost_usd=cost, cost_per_block_usd=per_block, tokens=tokens,
                   cache=run_cache_stats(run, usage=usage), calls=calls["calls"],
                   calls_not_succeeded=calls["not_succeeded"],
                   attempts=Attempt.objects.filter(run_id=run.pk).aggregate(n=Count("pk"))["n"],
                   savings=savings)


def json_object(text: str | None) -> dict[str, Any] | None:
    """The output as a JSON object (a ```json fence around it is allowed), or None."""
    if text is None:
        return None
    candidate = text.strip()
    if candidate.startswith("```"):
        candidate = candidate.strip("`").removeprefix("json").strip()
    if not candidate.startswith("{"):
        return None
    try:
        value = json.loads(candidate)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def leaves(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A structured answer's fields by dotted path: nested objects opened up (`author.name`), every
    other value (arrays included) a field of its own; an empty object is a field too."""
    flat: dict[str, Any] = {}
    for name, value in document.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            flat.update(leaves(value, f"{path}."))
        else:
            flat[path] = value
    return flat


_ABSENT = object()


def _compare_fields(parity: Parity, uid: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Field by field; a field on one side only is a difference. True when a listed uid was added."""
    parity.json_objects += 1
    untracked = listed = False
    for name in sorted(a.keys() | b.keys()):
        stats = parity.fields.get(name)
        if stats is None:
            if len(parity.fields) >= MAX_FIELDS:
                untracked = True
                continue
            stats = parity.fields[name] = FieldParity(differs=UidList(limit=parity.limit))
        value_a, value_b = a.get(name, _ABSENT), b.get(name, _ABSENT)
        if value_a is not _ABSENT and value_b is not _ABSENT and _canonical(value_a) == _canonical(value_b):
            stats.matches += 1
        else:
            listed = stats.differs.add(uid) or listed
    parity.fields_untracked += untracked
    return listed


@dataclass(frozen=True)
class Side:
    """One block's side of a pair: its status, answer text, structured answer and metadata."""

    status: str
    output: str | None
    output_json: Any = None
    metadata: Any = None
    # sha256 of the output text: after a retention purge emptied either side, "same answer" is
    # decided by the hashes (exact text), and fields are no longer compared.
    output_sha256: str = ""
    # The model that answered it (Block.model).
    model: str = ""


def _compare_pair(parity: Parity, uid: str, a: Side, b: Side) -> None:
    if a.status != BlockStatus.SUCCEEDED or b.status != BlockStatus.SUCCEEDED:
        parity.note(parity.not_compared.add(uid), uid, a.metadata or b.metadata)
        return
    parity.compared += 1
    if (a.output is None or b.output is None) and a.output_sha256 and b.output_sha256:
        if a.output_sha256 == b.output_sha256:  # purged: the hashes of the texts are all that is left
            parity.exact_matches += 1
            return
        parity.note(parity.mismatches.add(uid), uid, a.metadata or b.metadata)
        return
    structured = a.output_json is not None and b.output_json is not None
    same = _canonical(a.output_json) == _canonical(b.output_json) if structured else a.output == b.output
    listed = False
    pair = parity.by_models.setdefault(f"{a.model} | {b.model}", {"compared": 0, "exact_matches": 0})
    pair["compared"] += 1
    if same:
        parity.exact_matches += 1
        pair["exact_matches"] += 1
    else:
        listed = parity.mismatches.add(uid)
    if structured:
        object_a = a.output_json if isinstance(a.output_json, dict) else None
        object_b = b.output_json if isinstance(b.output_json, dict) else None
        if object_a is not None and object_b is not None:
            listed = _compare_fields(parity, uid, leaves(object_a), leaves(object_b)) or listed
    else:
        object_a, object_b = json_object(a.output), json_object(b.output)
        if object_a is not None and object_b is not None:
            listed = _compare_fields(parity, uid, object_a, object_b) or listed
    parity.note(listed, uid, a.metadata or b.metadata)


def outputs_parity(run_a: Run, run_b: Run, *, limit: int = UID_LIMIT, chunk_size: int = CHUNK_SIZE
                   ) -> Parity:
    """Output parity by uid between two runs, streamed over their blocks (see the module's doc)."""
    parity = Parity(limit=limit)
    fields = ("status", "output", "output_json", "metadata", "output_sha256", "model")
    last_index = -1
    while True:
        chunk = list(Block.objects.filter(run_id=run_a.pk, block_index__gt=last_index)
                     .order_by("block_index").values_list("block_index", "uid", *fields)[:chunk_size])
        if not chunk:
            break
        last_index = chunk[-1][0]
        others = {uid: Side(*row) for uid, *row in
                  Block.objects.filter(run_id=run_b.pk, uid__in=[row[1] for row in chunk])
                  .values_list("uid", *fields)}
        for _, uid, *row in chunk:
            side, other = Side(*row), others.get(uid)
            if other is None:
                parity.note(parity.only_in_a.add(uid), uid, side.metadata)
            else:
                _compare_pair(parity, uid, side, other)
    in_a = Block.objects.filter(run_id=run_a.pk).values("uid")
    only_b = Block.objects.filter(run_id=run_b.pk).exclude(uid__in=in_a)
    parity.only_in_b.count = only_b.count()
    listed_b = list(only_b.order_by("block_index").values_list("uid", "metadata")[:limit])
    parity.only_in_b.uids = [uid for uid, _ in listed_b]
    for uid, metadata in listed_b:
        parity.note(True, uid, metadata)
    return parity


def runs_compare(run_a: Run, run_b: Run, *, limit: int = UID_LIMIT, chunk_size: int = CHUNK_SIZE
                 ) -> RunComparison:
    """What each run cost and whether they gave the same answers; `limit` bounds every uid list."""
    return RunComparison(a=run_side(run_a), b=run_side(run_b),
                         parity=outputs_parity(run_a, run_b, limit=limit, chunk_size=chunk_size))
