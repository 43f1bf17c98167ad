"""Reads of what a run cost and what caching and packing did for it, from its recorded usage (the
Attempt rows: one per block per call, the blocks of a packed call sharing its request id) priced at
the catalog's rates. Nothing here is estimated again from the prompts, except where a figure needs
the size of a prefix the usage does not record apart (said where it happens).

Shared by the API (run detail, compare), the admin, `manage.py runs show`, the follow summary, the
demo and the cost benchmark.
"""

from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, DateTimeField, DurationField, ExpressionWrapper, F, Min, Sum
from django.db.models.functions import Coalesce

from apps.core.ids import RunId
from apps.providers.usage import BATCH_DISCOUNT, TokenUsage, cost_usd
from apps.runs.caching import cacheable_prefix_tokens
from apps.runs.models import Attempt, Run, RunMode

# Message Batches bill 50% of every standard price (docs: anthropic-api.md section 7).
BATCH_PRICE_FACTOR = BATCH_DISCOUNT
# The flag "caching on, but no cache read": raised only once this many calls went out after the
# first reply (a cache entry is usable only once the first response has begun, so the first wave of
# parallel calls may all write and none read).
NO_HIT_AFTER_CALLS = 5
CACHE_NOT_HITTING = "cache_not_hitting"
MONEY = Decimal("0.00000001")


def is_batch(run: Run) -> bool:
    """A run whose calls went through Message Batches (an auto run switched to live late has some)."""
    return run.effective_mode == RunMode.BATCH or run.batch_cost_usd > 0


@dataclass(frozen=True)
class ModelUsage:
    """One model's recorded calls of a run (a run uses several only after a reseed with a new
    model). `copies`: the prefix tokens that the blocks of packed calls would each have sent again
    in calls of their own; `missed_single` / `missed_packed`: answered calls, one block / several,
    whose usage shows no cache write and no read (their prefix went as plain input)."""

    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    copies: int
    missed_single: int
    missed_packed: int


def _usage_by_model(run_id: RunId) -> list[ModelUsage]:
    """One aggregate over the run's attempts, grouped by call (model, request id), then by model.

    Attempts without a request id never got an answer (and carry no usage): together they are no
    call, and none of the figures below counts them. SQL rather than rows in Python: a run may have
    100,000 calls."""
    table = connection.ops.quote_name(Attempt._meta.db_table)
    sql = f"""
        SELECT model,
               SUM(CASE WHEN request_id <> '' THEN 1 ELSE 0 END),
               SUM(input), SUM(output), SUM(written), SUM(read_),
               SUM(CASE WHEN request_id <> '' THEN (blocks - 1) * (written + read_) ELSE 0 END),
               SUM(CASE WHEN request_id <> '' AND written + read_ = 0 AND input > 0 AND blocks = 1
                        THEN 1 ELSE 0 END),
               SUM(CASE WHEN request_id <> '' AND written + read_ = 0 AND input > 0 AND blocks > 1
                        THEN 1 ELSE 0 END)
        FROM (SELECT model, request_id, COUNT(*) AS blocks, SUM(input_tokens) AS input,
                     SUM(output_tokens) AS output, SUM(cache_creation_input_tokens) AS written,
                     SUM(cache_read_input_tokens) AS read_
              FROM {table} WHERE run_id = %s GROUP BY model, request_id) AS calls
        GROUP BY model ORDER BY model
    """
    run_pk = Attempt._meta.get_field("run").target_field.get_db_prep_value(run_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [run_pk])
        rows = cursor.fetchall()
    return [ModelUsage(model, *(int(v or 0) for v in values)) for model, *values in rows]


# --- savings -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Savings:
    """What caching, packing and batch mode saved a run, from its recorded usage at catalog prices.

    - `cost_usd`: what the run's calls cost (the sum of its attempts, as on the run).
    - `uncached_usd` ("without caching"): the same calls with every cache write and cache read billed
      as plain input.
    - `unpacked_uncached_usd` ("without caching or packing"): that, with each block of a packed call
      in a call of its own carrying the call's cached prefix (its cache write + read tokens: the
      system prompt and instructions).
    - `live_usd` ("at live prices"): the same usage at standard prices. A batch-mode run's usage is
      recorded at batch prices (half), so this is what it would have cost as live calls; for a live
      run it is the cost itself.

    The first three are at the run's own prices (batch prices for a batch run), so each saving
    compares like with like. Packing is measured on the cached prefix, the only part of a call whose
    size the usage records apart, so `packing_measured` is False for a run that cached nothing (its
    packing saving then reads as zero, not as unknown-but-large). For a pack that was split after
    failing, the prefix of the failed call is carried into its halves, which makes the unpacked
    figure slightly generous."""

    cost_usd: Decimal
    uncached_usd: Decimal
    unpacked_uncached_usd: Decimal
    packing_measured: bool
    live_usd: Decimal = Decimal(0)
    batch: bool = False

    @property
    def caching_saved_usd(self) -> Decimal:
        return self.uncached_usd - self.cost_usd

    @property
    def packing_saved_usd(self) -> Decimal:
        return self.unpacked_uncached_usd - self.uncached_usd

    @property
    def batch_saved_usd(self) -> Decimal:
        return self.live_usd - self.cost_usd

    @property
    def saved_usd(self) -> Decimal:
        """What caching and packing saved together (batch mode's saving is `batch_saved_usd`)."""
        return self.unpacked_uncached_usd - self.cost_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "cost_usd": str(self.cost_usd), "without_caching_usd": str(self.uncached_usd),
            "without_caching_or_packing_usd": str(self.unpacked_uncached_usd),
            "at_live_prices_usd": str(self.live_usd), "caching_saved_usd": str(self.caching_saved_usd),
            "packing_saved_usd": str(self.packing_saved_usd),
            "batch_saved_usd": str(self.batch_saved_usd), "packing_measured": self.packing_measured,
            "batch": self.batch,
        }


def run_usage(run: Run) -> list[ModelUsage]:
    """The run's recorded usage by model: what run_savings and run_cache_stats read (pass it to both
    to aggregate once)."""
    return _usage_by_model(run.pk)


def run_savings(run: Run, *, usage: list[ModelUsage] | None = None) -> Savings:
    """Savings computed from the run's Attempt rows and the catalog's prices, never estimated from the
    prompts. Two queries, whatever the size of the run."""
    batch = is_batch(run)
    factor = BATCH_PRICE_FACTOR if batch else Decimal(1)
    one_hour = (run.options or {}).get("cache_ttl") == "1h"
    cost = Attempt.objects.filter(run_id=run.pk).aggregate(c=Sum("cost_usd"))["c"] or Decimal(0)
    uncached = unpacked = live = Decimal(0)
    prefix_seen = False
    for part in run_usage(run) if usage is None else usage:
        prefix = part.cache_creation_input_tokens + part.cache_read_input_tokens
        prefix_seen = prefix_seen or prefix > 0
        plain_input = part.input_tokens + prefix
        uncached += cost_usd(part.model, TokenUsage(input_tokens=plain_input,
                                                    output_tokens=part.output_tokens))
        unpacked += cost_usd(part.model, TokenUsage(input_tokens=plain_input + part.copies,
                                                    output_tokens=part.output_tokens))
        if batch:
            # The same tokens at standard prices; a run's writes all have its one TTL.
            written = part.cache_creation_input_tokens
            live += cost_usd(part.model, TokenUsage(
                input_tokens=part.input_tokens, output_tokens=part.output_tokens,
                cache_creation_input_tokens=written, cache_read_input_tokens=part.cache_read_input_tokens,
                cache_creation_1h_tokens=written if one_hour else 0))
    if not batch:
        live = cost
    return Savings(cost_usd=cost, uncached_usd=(uncached * factor).quantize(MONEY),
                   unpacked_uncached_usd=(unpacked * factor).quantize(MONEY), packing_measured=prefix_seen,
                   live_usd=live, batch=batch)


# --- the cache's hit rate ----------------------------------------------------------------------------

@dataclass(frozen=True)
class CacheStats:
    """How much of a run's cacheable input was read from the cache.

    hit rate = read / (read + written + missed), in tokens, over the run's answered calls, where
    `missed` is the prefix of the calls that neither wrote nor read the cache (caching off, or a
    prefix under the model's minimum: the provider then bills it as plain input and records it
    nowhere apart, so it is counted at the estimated prefix size, apps.runs.caching). A call that
    wrote or read has its whole prefix in read + written, so for a run whose cache works the rate is
    exactly read / (read + written) from the usage. None when the run has nothing cacheable yet (no
    answered call, or an empty prefix).

    `not_hitting` is the flag: caching on, at least NO_HIT_AFTER_CALLS calls sent after the first
    reply, and not one cache read."""

    caching: bool
    read_tokens: int
    written_tokens: int
    missed_tokens: int
    calls: int
    hit_rate: float | None
    not_hitting: bool = False
    calls_after_first: int = 0

    @property
    def cacheable_tokens(self) -> int:
        return self.read_tokens + self.written_tokens + self.missed_tokens

    def as_dict(self) -> dict[str, Any]:
        return {"caching": self.caching, "hit_rate": self.hit_rate, "read_tokens": self.read_tokens,
                "written_tokens": self.written_tokens, "missed_tokens": self.missed_tokens,
                "cacheable_tokens": self.cacheable_tokens, "calls": self.calls,
                "not_hitting": self.not_hitting}


def calls_after_first_reply(run_id: RunId) -> int:
    """Billed calls (answered, with input) that went out once the run's first billed call had its
    reply: calls that could have read what the first one wrote. The reply came at the call's start
    plus its latency (when it was recorded is later: results are written in batches); a batch
    request has neither, and its recording stands in."""
    answered = Attempt.objects.filter(run_id=run_id, input_tokens__gt=0).exclude(request_id="")
    replied = ExpressionWrapper(
        F("started_at") + ExpressionWrapper(F("latency_ms") * timedelta(milliseconds=1),
                                            output_field=DurationField()),
        output_field=DateTimeField())
    first = answered.aggregate(at=Min(Coalesce(replied, "created_at")))["at"]
    if first is None:
        return 0
    return answered.filter(started_at__gte=first).aggregate(
        n=Count("request_id", distinct=True))["n"]


def run_cache_stats(run: Run, *, usage: list[ModelUsage] | None = None) -> CacheStats:
    """The run's cache hit rate and the no-hit flag, from its recorded usage (see CacheStats)."""
    caching = bool((run.options or {}).get("cache"))
    read = written = calls = missed = 0
    spec = replace(run.call_spec, cache=True)
    for part in run_usage(run) if usage is None else usage:
        read += part.cache_read_input_tokens
        written += part.cache_creation_input_tokens
        calls += part.calls
        if part.missed_single:
            missed += part.missed_single * cacheable_prefix_tokens(spec, packed=False)
        if part.missed_packed:
            missed += part.missed_packed * cacheable_prefix_tokens(spec, packed=True)
    cacheable = read + written + missed
    hit_rate = read / cacheable if cacheable else None
    after_first = 0
    if caching and read == 0 and calls > NO_HIT_AFTER_CALLS:
        after_first = calls_after_first_reply(run.pk)
    return CacheStats(caching=caching, read_tokens=read, written_tokens=written, missed_tokens=missed,
                      calls=calls, hit_rate=hit_rate, not_hitting=after_first >= NO_HIT_AFTER_CALLS,
                      calls_after_first=after_first)


# --- warnings ----------------------------------------------------------------------------------------

def cache_not_hitting_warning(stats: CacheStats) -> dict[str, Any]:
    if stats.written_tokens:
        why = (f"{stats.written_tokens:,} tokens were written to the cache and none read back: the "
               "prefix changes from call to call, or the cache expires between calls")
    else:
        why = ("nothing was written to the cache either: the prefix is under the model's minimum "
               "cacheable length")
    return {
        "code": CACHE_NOT_HITTING,
        "message": (f"caching is on, but no cache read after {stats.calls_after_first:,} calls sent "
                    f"after the first reply; {why}"),
        "calls_after_first": stats.calls_after_first,
    }


def run_warnings(run: Run, *, stats: CacheStats | None = None) -> list[dict[str, Any]]:
    """What the run was warned about at create (stored on it), then what its usage shows since
    (computed now): `cache_prefix_too_short`, `cache_not_hitting`."""
    stats = run_cache_stats(run) if stats is None else stats
    found = list(run.warnings or [])
    if stats.not_hitting:
        found.append(cache_not_hitting_warning(stats))
    return found



# --- all of it, for one run ----------------------------------------------------------------------

@dataclass(frozen=True)
class CostReport:
    """What the run detail shows about money and caching, from one aggregate of the usage."""

    savings: Savings
    cache: CacheStats
    warnings: list[dict[str, Any]]


def run_cost_report(run: Run) -> CostReport:
    usage = run_usage(run)
    cache = run_cache_stats(run, usage=usage)
    return CostReport(savings=run_savings(run, usage=usage), cache=cache,
                      warnings=run_warnings(run, stats=cache))
