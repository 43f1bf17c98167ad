"""Submitting a batch run's due blocks as a Message Batch, exactly once per claim.

1. claim due blocks (the budget reserves their worst case, at batch prices), as for live calls;
2. in one transaction, write the MessageBatch row (status `submitting`, the claim's token) and stretch
   the blocks' leases to the batch's lifetime (a batch may take a day);
3. create the batch at the provider, and record its id (`in_progress`).
A crash between 2 and 3 leaves a `submitting` row: poll.py looks for the batch at the provider and
adopts it, or gives the blocks back if the provider never got it. A crash before 2 leaves claimed
blocks whose ordinary lease expires within minutes."""

import json
import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any
from uuid import UUID

import anthropic
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.ids import RunId
from apps.core.logcontext import log_context
from apps.failures.models import LogLevel
from apps.failures.services import diagnostic_log
from apps.keys.base_url import effective_base_url
from apps.keys.services import key_mark_invalid, key_secret
from apps.providers.client import make_client
from apps.providers.errors import FailureKind, classify
from apps.providers.prompts import BlockInput, build_params
from apps.runs.batching.results import custom_id
from apps.runs.models import Block, BlockStatus, MessageBatch, Run, RunMode
from apps.runs.services.claiming import ClaimedBlock, blocks_claim, blocks_release
from apps.runs.services.decisions import KEY_EVENT_CODES, KEY_PAUSE_CAUSES
from apps.runs.services.lifecycle import runs_pause_for_key
from apps.runs.transitions import RUN_ACTIVE, PausedCause

logger = logging.getLogger(__name__)

WORKER = "batch-submitter"


def _conf(name: str) -> Any:
    return settings.CONVEYOR[name]


def batch_runs_with_due_work() -> list[Any]:
    """Active batch-mode runs with due blocks and no batch being submitted right now."""
    now = timezone.now()
    runs = Run.objects.filter(status__in=RUN_ACTIVE, effective_mode=RunMode.BATCH)
    return [run_id for run_id in runs.values_list("pk", flat=True)
            if Block.objects.due(now).filter(run_id=run_id).exists()
            and not MessageBatch.objects.filter(run_id=run_id).submitting().exists()]


def block_models(run: Run, block_ids: list[int]) -> dict[int, str]:
    """The model each block is on, for a run whose blocks may move on in batch mode
    (options.fallback_in_batch); empty otherwise (every request on the primary model)."""
    if not run.fallback_models or not (run.options or {}).get("fallback_in_batch"):
        return {}
    models = run.models
    return {block_id: models[min(index, len(models) - 1)]
            for block_id, index in Block.objects.filter(id__in=block_ids).values_list("id", "model_index")}


def _requests(run: Run, blocks: list[ClaimedBlock], token: UUID) -> tuple[list[dict[str, Any]], list[int]]:
    """One request per block (batch mode does not pack), up to the size cap; the blocks that did not
    fit are returned to be given back."""
    spec = run.call_spec
    on_model = block_models(run, [block.id for block in blocks])
    requests: list[dict[str, Any]] = []
    size, left_out = 0, []
    for block in blocks:
        params = build_params(replace(spec, model=on_model.get(block.id, run.model)),
                              [BlockInput(block.id, block.uid, block.input, block.metadata)])
        params.pop("extra_body", None)
        if spec.temperature is not None:
            params["temperature"] = spec.temperature
        approx = (len(block.input.encode("utf-8")) + len(spec.system_prompt) + len(spec.prompt_template)
                  + len(spec.output_schema) + len(json.dumps(block.metadata or {})) + 200)
        if requests and size + approx > _conf("BATCH_MAX_BYTES"):
            left_out.append(block.id)
            continue
        size += approx
        requests.append({"custom_id": custom_id(token, block.id), "params": params})
    return requests, left_out


@transaction.atomic
def _record_submitting(run: Run, token: UUID, requests: int, blocks: int) -> MessageBatch:
    lease = timezone.now() + timedelta(hours=_conf("BATCH_LEASE_HOURS"))
    Block.objects.filter(run_id=run.pk, status=BlockStatus.CLAIMED, lease_token=token).update(
        lease_expires_at=lease)
    return MessageBatch.objects.create(run=run, key_id=run.key_id, lease_token=token, requests=requests,
                                       blocks=blocks)


def batch_client(run_or_batch: Run | MessageBatch) -> anthropic.Anthropic:
    key = run_or_batch.key
    assert key is not None  # a key in use by an open run cannot be deleted
    return make_client(api_key=key_secret(key=key),
                       base_url=effective_base_url(provider=key.provider, base_url=key.base_url))


def batch_submit_for_run(*, run_id: RunId) -> MessageBatch | None:
    """Claim a batch's worth of the run's due blocks and submit them; None when there was nothing
    to submit (or the budget has no room)."""
    limit = _conf("BATCH_MAX_REQUESTS")
    claim = blocks_claim(run_id=run_id, limit=limit, worker=WORKER, batch=True)
    if not claim.blocks:
        return None
    assert claim.lease_token is not None  # a claim that took blocks has its token
    run = Run.objects.select_related("key").get(pk=run_id)
    requests, left_out = _requests(run, claim.blocks, claim.lease_token)
    if left_out:
        blocks_release(run_id=run_id, token=claim.lease_token, block_ids=left_out)
    batch = _record_submitting(run, claim.lease_token, len(requests), len(requests))
    assert run.key is not None  # a key in use by an open run cannot be deleted
    secret = key_secret(key=run.key)
    try:
        with log_context(key_id=run.key_id, secrets=(secret,)), batch_client(run) as client:
            # (Each request's params are build_params' dict, not the SDK's TypedDict.)
            created = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    except anthropic.APIError as exc:
        failure = classify(exc, secrets=(secret,))
        MessageBatch.objects.filter(pk=batch.pk).abandon(error=str(failure))
        blocks_release(run_id=run_id, token=claim.lease_token)
        if failure.kind in KEY_PAUSE_CAUSES:
            if failure.kind == FailureKind.KEY_INVALID:
                # As for a live call: the key is marked invalid (unless it changed since it was read),
                # so that validating it again, once fixed, resumes the runs it paused.
                key_mark_invalid(key_id=run.key.pk, error=f"{failure.code}: {failure.message}",
                                 revision=run.key.revision)
            paused = runs_pause_for_key(key_id=run.key.pk, cause=KEY_PAUSE_CAUSES[failure.kind],
                                        reason=f"provider refused the key: {failure}")
            diagnostic_log(
                function_name="conveyor.runs.batches", event_code=KEY_EVENT_CODES[failure.kind],
                level=LogLevel.ERROR,
                message=f"the provider refused key {run.key_id} ({failure}) for a batch: its runs are "
                        f"paused ({KEY_PAUSE_CAUSES[failure.kind]})",
                metadata={"key_id": run.key_id, "http_status": failure.http_status,
                          "error_code": failure.code, "cause": KEY_PAUSE_CAUSES[failure.kind],
                          "runs_paused": paused},
                run_id=run_id, secrets=(secret,),
            )
        elif failure.kind not in (FailureKind.RETRYABLE, FailureKind.THROTTLED, FailureKind.OVERLOADED):
            # Refused as a whole (not per item): submitting the same blocks again would be refused
            # again on every poll, so the run waits for a person, its blocks unharmed.
            logger.warning("run %s: batch refused by the provider: %s", run_id, failure)
            Run.objects.filter(pk=run_id).pause(cause=PausedCause.BATCH_REFUSED,
                                                reason=f"the provider refused the batch: {failure}")
        return None
    record_submitted(batch, created)
    logger.info("run %s: batch %s submitted with %d request(s)", run_id, created.id, len(requests))
    return batch


def record_submitted(batch: MessageBatch, created: Any) -> None:
    """Step 3's end: the provider's id on the row (a crash before this is what poll.py recovers)."""
    MessageBatch.objects.filter(pk=batch.pk).mark_submitted(
        provider_batch_id=created.id, now=timezone.now(), counts=created.request_counts.model_dump())
    batch.refresh_from_db()


def batches_submit() -> int:
    """Beat: one batch per batch-mode run with due work. Returns how many were submitted."""
    submitted = 0
    for run_id in batch_runs_with_due_work():
        with log_context(run_id=run_id):
            try:
                submitted += batch_submit_for_run(run_id=run_id) is not None
            except Exception:
                logger.exception("run %s: could not submit a batch", run_id)
    return submitted
