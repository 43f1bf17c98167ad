"""One pack of blocks through the provider: the call, its lane settled after it, and the split of a
pack whose reply overflows or mis-maps, down to single blocks (each sub-call reserving its worst case
against the run's budget, apps.runs.services.budget, and passing the lane too)."""

import asyncio
import itertools
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anthropic
from asgiref.sync import sync_to_async
from django.conf import settings

from apps.core.logcontext import correlation_id, log_context
from apps.core.redaction import redact
from apps.counters.recording import record_call, record_pack, record_split
from apps.lanes.gate import Ended, Grant, LaneGate, Need, Settle, Settlements
from apps.providers.client import CallResult, call_messages, make_async_client
from apps.providers.errors import FailureKind, ProviderFailure
from apps.providers.prompts import Answer, BlockInput, build_params, read_reply, request_sha256
from apps.providers.structured import without_document
from apps.providers.usage import TokenUsage, cost_usd
from apps.runs.estimates import call_input_tokens, prefix_text
from apps.runs.services.budget import budget_reserve_call
from apps.runs.services.claiming import ClaimedBlock, lease_seconds
from apps.runs.services.decisions import Outcome
from apps.runs.serving.context import RunContext

logger = logging.getLogger(__name__)

SNAPSHOT_TEXT_LIMIT = 2000
# A split's sub-call waits for its lane at most this long before giving its blocks back as retries.
SPLIT_LANE_PATIENCE_SECONDS = 30.0


def call_need(ctx: RunContext, blocks: list[ClaimedBlock]) -> Need:
    return Need(input_tokens=call_input_tokens(ctx.spec, [b.input for b in blocks]),
                output_tokens=ctx.spec.max_tokens, blocks=len(blocks))


def settle_kind(failure: ProviderFailure | None) -> Settle:
    """What a call's answer says about the lane's capacity."""
    if failure is None:
        return Settle.OK
    if failure.kind == FailureKind.THROTTLED:
        return Settle.THROTTLED
    if failure.kind == FailureKind.OVERLOADED:
        return Settle.OVERLOAD
    if failure.kind == FailureKind.RETRYABLE and (
        (failure.http_status or 0) >= 500 or failure.code in ("timeout", "connection_error")
    ):
        return Settle.OVERLOAD
    return Settle.NEUTRAL


def throttle_seconds(failure: ProviderFailure) -> float:
    """How long a 429 holds the lane: its Retry-After, else when its exhausted limit resets."""
    if failure.retry_after is not None:
        return failure.retry_after
    reset = failure.rate_limits.reset_in()
    if reset is not None and reset > 0:
        return reset
    default: float = settings.CONVEYOR["THROTTLE_DEFAULT_SECONDS"]
    return default


def _snapshot(params: dict[str, Any], secrets: tuple[str, ...]) -> dict[str, Any]:
    """What was sent, trimmed and redacted, for the dead-letter row."""
    def trim(value: Any) -> Any:
        if isinstance(value, str):
            return value[:SNAPSHOT_TEXT_LIMIT]
        if isinstance(value, dict):
            return {k: trim(v) for k, v in value.items()}
        if isinstance(value, list):
            return [trim(v) for v in value]
        return value

    snapshot: dict[str, Any] = redact(trim(params), secrets)
    return snapshot


class ClientPool:
    """SDK clients per key (and revision) in this process, shared by every run on that key, so
    connections are reused across runs.

    Several clients per key, taken in turn: the HTTP client under the SDK (httpcore) looks at every
    connection of its pool on each request (and asks each socket for its attributes), so one pool
    holding a hundred connections spent a third of the loop's CPU on that scan (measured with py-spy
    at cap 100). Thirty-two pools of a few connections each cost ~5% less CPU per call than eight
    (measured side by side at cap 100 / 200 ms); each is built when its turn first comes, so the
    first call does not wait for all of them.

    Sized per key (`size`: the calls its lanes can have in flight, set by the loop every turn): each
    of the key's clients holds its part of them with headroom, and keeps as many idle, since a pool
    smaller than the calls in flight queues calls inside the HTTP client where nothing sees them
    wait. A client built for fewer calls than the key now needs is replaced at its next turn; the
    one replaced finishes its calls and is closed with the pool."""

    SHARDS = 32
    # Calls are spread over the shards in turn; this covers their uneven ends.
    HEADROOM = 1.5
    MIN_CONNECTIONS = 4
    # Before the loop has said: what the SDK's own client would hold.
    DEFAULT_CALLS = 1000

    def __init__(self) -> None:
        self._clients: dict[tuple[int, int], list[tuple[anthropic.AsyncAnthropic, int] | None]] = {}
        self._turn = itertools.count()
        self._calls: dict[int, int] = {}
        self._retired: list[anthropic.AsyncAnthropic] = []

    def size(self, key_id: int, calls: int) -> None:
        """The most calls the key's clients must hold at once from now on."""
        self._calls[key_id] = calls

    def connections_per_client(self, key_id: int) -> int:
        calls = self._calls.get(key_id, self.DEFAULT_CALLS)
        return max(self.MIN_CONNECTIONS, math.ceil(calls * self.HEADROOM / self.SHARDS))

    def get(self, ctx: RunContext) -> anthropic.AsyncAnthropic:
        slot = (ctx.key_id, ctx.key_revision)
        clients = self._clients.get(slot)
        if clients is None:
            for stale in [s for s in self._clients if s[0] == ctx.key_id]:
                for entry in self._clients.pop(stale):
                    if entry is not None:
                        asyncio.get_running_loop().create_task(entry[0].close())
            clients = self._clients[slot] = [None] * self.SHARDS
        turn = next(self._turn) % len(clients)
        entry = clients[turn]
        wanted = self.connections_per_client(ctx.key_id)
        if entry is None or entry[1] < wanted:
            if entry is not None:
                self._retired.append(entry[0])
            # Sized with room to grow, so a lane that grows slowly does not replace it every turn.
            connections = wanted if entry is None else max(wanted, entry[1] * 2)
            entry = clients[turn] = (make_async_client(
                api_key=ctx.api_key, base_url=ctx.base_url, max_connections=connections,
                max_keepalive=connections), connections)
        return entry[0]

    async def close(self) -> None:
        pools, self._clients = list(self._clients.values()), {}
        retired, self._retired = self._retired, []
        for clients in pools:
            for entry in clients:
                if entry is not None:
                    await entry[0].close()
        for client in retired:
            await client.close()


class PackCaller:
    """Calls for one serving loop. `gate` is the lanes' shared state; `clock` is wall time in
    seconds (the lanes' clock, shared by every worker). With `settlements`, a call's end is handed to
    them (the loop settles every call that ended since its last turn at once) instead of settled
    by the call itself."""

    def __init__(self, *, gate: LaneGate, clients: ClientPool,
                 clock: Callable[[], float] = time.time, settlements: Settlements | None = None) -> None:
        self.gate = gate
        self.settlements = settlements
        self.clients = clients
        self.clock = clock
        self.calls = 0
        self.splits = 0
        # Per run, since the last time the loop took them: initial packs, pack calls, splits, blocks.
        self.pack_metrics: dict[Any, Counter[str]] = defaultdict(Counter)

    def take_pack_metrics(self) -> dict[Any, Counter[str]]:
        metrics, self.pack_metrics = self.pack_metrics, defaultdict(Counter)
        return metrics

    async def call(self, ctx: RunContext, blocks: list[ClaimedBlock], token: UUID, grant: Grant,
                   need: Need) -> list[Outcome]:
        """The pack's call under the lane grant it already holds; never raises."""
        if len(blocks) > 1:
            self.pack_metrics[ctx.run_id]["initial_pack_count"] += 1
            record_pack(model=ctx.spec.model)
        try:
            with log_context(run_id=ctx.run_id, key_id=ctx.key_id, secrets=(ctx.api_key,)):
                outcomes = await self._call(ctx, blocks, token, grant, need, carried=TokenUsage())
        except Exception as exc:  # a bug must not lose the blocks: they retry like any error
            logger.exception("call for run %s: unexpected error", ctx.run_id)
            failure = ProviderFailure(FailureKind.RETRYABLE, "internal_error",
                                      redact(f"{type(exc).__name__}: {exc}", (ctx.api_key,)))
            outcomes = [Outcome(block_id=b.id, lease_token=token, attempt=b.attempt, number=b.number,
                                failure=failure) for b in blocks]
        for outcome in outcomes:  # the key of the pool they were called with (Attempt.key)
            outcome.key_id, outcome.key_revision = ctx.key_id, ctx.key_revision
        return outcomes

    async def _call(self, ctx: RunContext, blocks: list[ClaimedBlock], token: UUID, grant: Grant,
                    need: Need, carried: TokenUsage) -> list[Outcome]:
        """One call, logging with its own context (each call runs in its own asyncio task, so calls
        in flight at once never mix their fields): the correlation id sent is the one logged."""
        first = blocks[0]
        cid = correlation_id(run_id=ctx.run_id, block_uid=first.uid, attempt=first.attempt)
        with log_context(run_id=ctx.run_id, block_uid=first.uid, attempt=first.attempt,
                         correlation_id=cid, key_id=ctx.key_id, secrets=(ctx.api_key,)):
            outcomes = await self._call_in_context(ctx, blocks, token, grant, need, carried, cid)
        return outcomes

    async def _call_in_context(self, ctx: RunContext, blocks: list[ClaimedBlock], token: UUID,
                               grant: Grant, need: Need, carried: TokenUsage, cid: str
                               ) -> list[Outcome]:
        """`carried` is the usage of failed pack calls above this one: spent money, shared out to the
        blocks so that the run's cost stays exact."""
        spec = ctx.spec
        secrets = (ctx.api_key,)
        params = build_params(spec, [BlockInput(b.id, b.uid, b.input, b.metadata) for b in blocks])
        headers = {
            "x-conveyor-run": str(ctx.run_id),
            "x-conveyor-correlation-id": cid,
            "x-conveyor-prompt-sha256": request_sha256(params),
        }
        self.calls += 1
        if len(blocks) > 1:
            self.pack_metrics[ctx.run_id]["packs_processed"] += 1
            self.pack_metrics[ctx.run_id]["packed_blocks"] += len(blocks)
        started = datetime.now(UTC)
        result: CallResult | None = None
        failure: ProviderFailure | None = None
        try:
            result = await call_messages(self.clients.get(ctx), params, stream=spec.stream,
                                         secrets=secrets, headers=headers)
            answers = read_reply(spec, [b.uid for b in blocks], result.text)
        except ProviderFailure as exc:
            # A structured run's call that stopped without a document: output_invalid alone, a split
            # in a pack.
            failure = without_document(exc, packed=len(blocks) > 1) if spec.output_schema else exc
            if result is not None:  # the reply came back but does not map onto the pack
                failure.usage, failure.request_id = result.usage, result.request_id
                failure.rate_limits = result.rate_limits
        latency = (datetime.now(UTC) - started).total_seconds()
        record_call(model=spec.model, failure=failure, latency_seconds=latency)
        await self._settle(ctx, grant, need, result, failure, latency)
        if failure is not None:
            spent = failure.usage
            if failure.kind == FailureKind.OUTPUT_PROBLEM and len(blocks) > 1:
                return await self._split(ctx, blocks, token, carried + spent)
            shares = (carried + spent).split(len(blocks))
            snapshot = _snapshot(params, secrets)
            return [
                Outcome(block_id=b.id, lease_token=token, attempt=b.attempt, number=b.number, usage=share,
                        cost_usd=cost_usd(spec.model, share), request_id=failure.request_id,
                        model=spec.model, failure=failure, payload_snapshot=snapshot,
                        started_at=started, correlation_id=cid)
                for b, share in zip(blocks, shares, strict=True)
            ]
        assert result is not None
        shares = self._attribute(ctx, blocks, answers, carried + result.usage)
        refused = [a.failure for a in answers.values() if a.failure is not None]
        for answer_failure in refused:  # a block's answer the schema refused: this call's
            answer_failure.request_id, answer_failure.usage = result.request_id, result.usage
        snapshot = _snapshot(params, secrets) if refused else {}
        return [
            Outcome(block_id=b.id, lease_token=token, attempt=b.attempt, number=b.number, usage=share,
                    cost_usd=cost_usd(spec.model, share), latency_ms=result.latency_ms,
                    request_id=result.request_id, model=result.model, output=answers[b.uid].text,
                    output_json=answers[b.uid].document, failure=answers[b.uid].failure,
                    payload_snapshot=snapshot if answers[b.uid].failure else {},
                    started_at=started, correlation_id=cid)
            for b, share in zip(blocks, shares, strict=True)
        ]

    @staticmethod
    def _attribute(ctx: RunContext, blocks: list[ClaimedBlock], answers: dict[str, Answer],
                   usage: TokenUsage) -> list[TokenUsage]:
        """A pack's usage shared by what each block brought: its own text plus an even part of the
        prompt (input), its reply (output), the cached prefix evenly."""
        if len(blocks) == 1:
            return [usage]
        prefix = len(prefix_text(ctx.spec, packed=True)) / len(blocks)
        return usage.attribute([len(b.input) + prefix for b in blocks],
                               [len(answers[b.uid].text) + 1 for b in blocks])

    async def _settle(self, ctx: RunContext, grant: Grant, need: Need, result: CallResult | None,
                      failure: ProviderFailure | None, latency: float) -> None:
        usage = result.usage if result is not None else (failure.usage if failure else TokenUsage())
        rate_limits = result.rate_limits if result is not None else (
            failure.rate_limits if failure is not None else None)
        kind = settle_kind(failure)
        ended = Ended(grant, need, used_input_tokens=usage.rate_limited_input,
                      used_output_tokens=usage.output_tokens, outcome=kind,
                      retry_after=(throttle_seconds(failure)
                                   if failure is not None and kind == Settle.THROTTLED else 0.0),
                      headers=rate_limits, latency_seconds=latency)
        if self.settlements is not None:
            self.settlements.add(ctx.lane, run_id=ctx.run_id, limits=ctx.limits, ended=ended)
            return
        try:
            await self.gate.settle_many(ctx.lane, run_id=ctx.run_id, limits=ctx.limits,
                                        now=self.clock(), ended=[ended])
        except Exception:  # Redis down: the entry expires with the lease; the work is in PostgreSQL
            logger.warning("could not settle lane %s", ctx.lane.name, exc_info=True)

    async def _split(self, ctx: RunContext, blocks: list[ClaimedBlock], token: UUID, spent: TokenUsage
                     ) -> list[Outcome]:
        self.splits += 1
        self.pack_metrics[ctx.run_id]["split_events"] += 1
        record_split(model=ctx.spec.model)
        half = len(blocks) // 2
        first, second = spent.split(2)
        parts = await asyncio.gather(
            self._call_when_granted(ctx, blocks[:half], token, first),
            self._call_when_granted(ctx, blocks[half:], token, second),
        )
        return [o for part in parts for o in part]

    async def _call_when_granted(self, ctx: RunContext, blocks: list[ClaimedBlock], token: UUID,
                                 carried: TokenUsage) -> list[Outcome]:
        """A split's sub-call reserves its worst case against the run's budget, then waits for its lane
        like any call. If the budget cannot hold it, it is not made: its blocks wait for the budget
        (decisions.BUDGET_WAIT). If the lane stays shut, its blocks go back as retries (throttling: no
        attempt used) rather than hold their lease."""
        reserved = await self._reserve(ctx, blocks, token, carried)
        if reserved is None:
            shares = carried.split(len(blocks))
            return [Outcome(block_id=b.id, lease_token=token, attempt=b.attempt, number=b.number,
                            usage=share, cost_usd=cost_usd(ctx.spec.model, share), model=ctx.spec.model,
                            budget_wait=True)
                    for b, share in zip(blocks, shares, strict=True)]
        blocks = reserved
        need = call_need(ctx, blocks)
        give_up = self.clock() + SPLIT_LANE_PATIENCE_SECONDS
        while True:
            grant = await self.gate.try_acquire(ctx.lane, run_id=ctx.run_id, need=need,
                                                parallelism=10**9, limits=ctx.limits, now=self.clock(),
                                                lease_seconds=lease_seconds())
            if grant.granted:
                return await self._call(ctx, blocks, token, grant, need, carried)
            if self.clock() >= give_up:
                failure = ProviderFailure(FailureKind.THROTTLED, "lane_closed",
                                          f"the lane stayed closed ({grant.reason}) for a split call",
                                          retry_after=grant.wait_seconds, usage=carried)
                shares = carried.split(len(blocks))
                return [Outcome(block_id=b.id, lease_token=token, attempt=b.attempt, number=b.number,
                                usage=share, cost_usd=cost_usd(ctx.spec.model, share), model=ctx.spec.model,
                                failure=failure)
                        for b, share in zip(blocks, shares, strict=True)]
            await asyncio.sleep(min(max(grant.wait_seconds, 0.05), 1.0))

    @staticmethod
    async def _reserve(ctx: RunContext, blocks: list[ClaimedBlock], token: Any, carried: TokenUsage
                       ) -> list[ClaimedBlock] | None:
        """The blocks with the budget's reservation for their call (None: the budget cannot hold it).
        The reservation is written under the run's row lock, on the loop's database thread."""
        reserve = sync_to_async(budget_reserve_call, thread_sensitive=True)
        return await reserve(run_id=ctx.run_id, token=token, blocks=blocks,
                             spent_usd=cost_usd(ctx.spec.model, carried))
