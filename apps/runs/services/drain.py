"""The drain: one Celery task's worth of work on one run, as an asyncio loop.

Why asyncio inside a prefork worker (see docs/architecture.md): a provider call is seconds of waiting
and a database write is milliseconds of work. One event loop keeps up to `run.parallelism` calls in
flight through AsyncAnthropic, while every database operation goes through a single thread
(`sync_to_async(thread_sensitive=True)`), so a process holds ONE database connection however many
calls it has in flight. Outcomes that finish together are written together, in one transaction.
"""

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from apps.keys.redaction import redact
from apps.keys.services import key_secret
from apps.providers.client import call_messages, make_async_client
from apps.providers.errors import FailureKind, ProviderFailure
from apps.providers.prompts import BlockInput, CallSpec, build_params, parse_packed_reply, request_sha256
from apps.providers.usage import TokenUsage, cost_usd
from apps.runs.models import Run, RunStatus
from apps.runs.services.claiming import Claim, ClaimedBlock, blocks_claim, next_due_at
from apps.runs.services.lifecycle import run_pause_for_deleted_key
from apps.runs.services.outcomes import Outcome, RecordReport, outcomes_record
from apps.runs.transitions import RUN_ACTIVE

logger = logging.getLogger(__name__)

SNAPSHOT_TEXT_LIMIT = 2000


@dataclass(frozen=True)
class DrainContext:
    run_id: Any
    key_id: int
    # The key's revision when its secret was read: a 401 on an old secret must not condemn a
    # key its owner has fixed since (apps.keys.services.key_mark_invalid).
    key_revision: int
    status: str
    api_key: str
    base_url: str
    spec: CallSpec
    parallelism: int
    pack_size: int


@dataclass
class DrainResult:
    written: int = 0
    calls: int = 0
    splits: int = 0
    # The time slice ended with work left: the task hands the run back to the queue.
    sliced: bool = False


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def drain_context(run_id: Any) -> DrainContext | None:
    run = Run.objects.select_related("key").filter(pk=run_id).first()
    if run is None:
        return None
    if run.key is None:
        run_pause_for_deleted_key(run_id=run.pk)
        return None
    options = run.options or {}
    return DrainContext(
        run_id=run.pk,
        key_id=run.key.pk,
        key_revision=run.key.revision,
        status=run.status,
        api_key=key_secret(key=run.key),
        base_url=run.key.base_url,
        spec=CallSpec(
            model=run.model, system_prompt=run.system_prompt, prompt_template=run.prompt_template,
            max_tokens=run.max_tokens, temperature=run.temperature,
            cache=bool(options.get("cache", False)), cache_ttl=options.get("cache_ttl", "5m"),
            stream=bool(options.get("stream", False)),
        ),
        parallelism=run.parallelism,
        pack_size=int(options.get("pack_size", 1)),
    )


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

    return redact(trim(params), secrets)


class Drainer:
    def __init__(self, ctx: DrainContext, *, worker: str) -> None:
        self.ctx = ctx
        self.worker = worker
        self.secrets = (ctx.api_key,)
        self.client = make_async_client(api_key=ctx.api_key, base_url=ctx.base_url)
        self.result = DrainResult()
        # What this drain keeps in flight: the run's parallelism, up to the per-process ceiling. The
        # run-wide bound (several drains on other processes) is enforced by the claim itself.
        self.cap = min(ctx.parallelism, settings.CONVEYOR["DRAIN_MAX_IN_FLIGHT"])

    async def call_pack(self, blocks: list[ClaimedBlock], token: Any) -> list[Outcome]:
        try:
            return await self._call_pack(blocks, token, carried=TokenUsage())
        except Exception as exc:  # a bug must not lose the blocks: they retry like any error
            logger.exception("drain of run %s: unexpected error", self.ctx.run_id)
            failure = ProviderFailure(FailureKind.RETRYABLE, "internal_error",
                                      redact(f"{type(exc).__name__}: {exc}", self.secrets))
            return [Outcome(block_id=b.id, lease_token=token, attempt=b.attempt, failure=failure)
                    for b in blocks]

    async def _call_pack(self, blocks: list[ClaimedBlock], token: Any, carried: TokenUsage
                         ) -> list[Outcome]:
        """Call the model for a pack; a pack whose reply overflows or mis-maps is split in two and
        retried, down to single blocks. `carried` is usage of failed pack calls above this one:
        spent money, shared out to the blocks so that the run's cost stays exact."""
        spec = self.ctx.spec
        params = build_params(spec, [BlockInput(b.id, b.uid, b.input) for b in blocks])
        headers = {
            "x-conveyor-run": str(self.ctx.run_id),
            "x-conveyor-correlation-id": f"{self.ctx.run_id}:{blocks[0].uid}:{blocks[0].attempt}",
            "x-conveyor-prompt-sha256": request_sha256(params),
        }
        self.result.calls += 1
        try:
            result = await call_messages(self.client, params, stream=spec.stream,
                                         secrets=self.secrets, headers=headers)
            if len(blocks) == 1:
                outputs = {blocks[0].uid: result.text}
            else:
                outputs = parse_packed_reply(result.text, [b.uid for b in blocks])
        except ProviderFailure as failure:
            spent = failure.usage
            if failure.kind == FailureKind.OUTPUT_PROBLEM and len(blocks) > 1:
                return await self._split(blocks, token, carried + spent)
            shares = (carried + spent).split(len(blocks))
            snapshot = _snapshot(params, self.secrets)
            return [
                Outcome(block_id=b.id, lease_token=token, attempt=b.attempt, usage=share,
                        cost_usd=cost_usd(spec.model, share), request_id=failure.request_id,
                        model=spec.model, failure=failure, payload_snapshot=snapshot)
                for b, share in zip(blocks, shares, strict=True)
            ]
        shares = (carried + result.usage).split(len(blocks))
        return [
            Outcome(block_id=b.id, lease_token=token, attempt=b.attempt, usage=share,
                    cost_usd=cost_usd(spec.model, share), latency_ms=result.latency_ms,
                    request_id=result.request_id, model=result.model, output=outputs[b.uid])
            for b, share in zip(blocks, shares, strict=True)
        ]

    async def _split(self, blocks: list[ClaimedBlock], token: Any, spent: TokenUsage
                     ) -> list[Outcome]:
        self.result.splits += 1
        half = len(blocks) // 2
        first, second = spent.split(2)
        parts = await asyncio.gather(
            self._call_pack(blocks[:half], token, first),
            self._call_pack(blocks[half:], token, second),
        )
        return [o for part in parts for o in part]

    def record_and_claim(self, outcomes: list[Outcome], limit: int
                         ) -> tuple[RecordReport | None, Claim | None]:
        """Runs in the database thread: write what finished, then refill the freed slots. One hop
        to that thread per turn of the loop, not two, since every hop waits for the GIL."""
        report = None
        if outcomes:
            report = outcomes_record(run_id=self.ctx.run_id, outcomes=outcomes, worker=self.worker,
                                     secrets=self.secrets, key_revision=self.ctx.key_revision)
            if report.run_status != RunStatus.RUNNING:
                return report, None
        claim = None
        if limit > 0:
            claim = blocks_claim(run_id=self.ctx.run_id, limit=limit, worker=self.worker)
        return report, claim

    async def run(self, *, slice_seconds: float, poll_seconds: float = 0.25) -> DrainResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + slice_seconds
        run_id = self.ctx.run_id
        tasks: dict[asyncio.Task, int] = {}
        in_flight = 0
        finished: list[Outcome] = []
        claiming = self.ctx.status in RUN_ACTIVE
        database = sync_to_async(self.record_and_claim, thread_sensitive=True)
        try:
            while True:
                if claiming and loop.time() >= deadline:
                    claiming = False
                    self.result.sliced = True
                wait_until = None
                limit = self.cap - in_flight if claiming else 0
                if finished or limit > 0:
                    report, claim = await database(finished, limit)
                    finished = []
                    if report is not None:
                        self.result.written += report.written
                        if report.run_status != RunStatus.RUNNING:
                            claiming = False
                    if claim is not None:
                        if claim.run_status != RunStatus.RUNNING:
                            claiming = False
                        elif claim.throttled_until:
                            wait_until = claim.throttled_until
                        size = max(1, self.ctx.pack_size)
                        for i in range(0, len(claim.blocks), size):
                            pack = claim.blocks[i:i + size]
                            task = asyncio.create_task(self.call_pack(pack, claim.lease_token))
                            tasks[task] = len(pack)
                            in_flight += len(pack)
                if not tasks:
                    if not claiming:
                        break
                    if wait_until is None:
                        due = await sync_to_async(next_due_at, thread_sensitive=True)(run_id=run_id)
                        if due is None or due <= timezone.now():
                            # Nothing pending, or the rest is held by other drains: done here.
                            break
                        wait_until = due
                    wait = (wait_until - timezone.now()).total_seconds()
                    if loop.time() + wait > deadline:
                        break  # the pump wakes the run when its work comes due
                    await asyncio.sleep(max(wait, 0.01))
                    continue
                done, _ = await asyncio.wait(tasks, timeout=poll_seconds,
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    in_flight -= tasks.pop(task)
                    finished.extend(task.result())
        finally:
            for task in tasks:
                task.cancel()
            await self.client.close()
        return self.result


async def drain_run(run_id: Any, *, slice_seconds: float, worker: str | None = None
                    ) -> DrainResult:
    ctx = await sync_to_async(drain_context, thread_sensitive=True)(run_id)
    try:
        if ctx is None or ctx.status not in RUN_ACTIVE:
            return DrainResult()
        return await Drainer(ctx, worker=worker or worker_name()).run(slice_seconds=slice_seconds)
    finally:
        await sync_to_async(close_old_connections, thread_sensitive=True)()
