"""Beat's look at open batches: cancel what was asked for, notice batches that ended, and stream their
results into the outcome path (never loading a result file whole), a chunk per transaction.

Everything here is safe to run again after a crash: a result already written finds its block no
longer held under the batch's token and is skipped, so a block is never counted twice; the batch's
id is in PostgreSQL, so a lost worker or a flushed Redis only delays the next look.
"""

import logging
from datetime import timedelta
from typing import Any

import anthropic
from django.conf import settings
from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone

from apps.core.logcontext import log_context
from apps.counters.recording import metrics_flush
from apps.keys.services import key_secret
from apps.providers.errors import classify
from apps.runs.batching.results import BatchItem, outcome_of, parse_custom_id
from apps.runs.batching.submit import batch_client, block_models
from apps.runs.models import Block, BlockStatus, MessageBatch, MessageBatchStatus, Run, RunMode
from apps.runs.services.claiming import blocks_release
from apps.runs.services.outcomes import outcomes_record, outcomes_write_failed
from apps.runs.transitions import RUN_ENDING

logger = logging.getLogger(__name__)

CHUNK = 500
FUNCTION_NAME = "conveyor.runs.batches"


def _conf(name: str) -> Any:
    return settings.CONVEYOR[name]


def _record_chunk(batch: MessageBatch, run: Run, lines: list[Any], secret: str) -> int:
    """Write the outcomes of these result lines whose blocks are still held under the batch's claim."""
    token = batch.lease_token
    wanted = {}
    for line in lines:
        parsed = parse_custom_id(line.custom_id)
        if parsed and parsed[0] == token.hex:
            wanted[parsed[1]] = line
    held = Block.objects.filter(run_id=run.pk, id__in=wanted, status=BlockStatus.CLAIMED, lease_token=token)
    output_schema = run.call_spec.output_schema
    on_model = block_models(run, list(wanted))
    outcomes = [
        outcome_of(wanted[block_id].result.model_dump(mode="json"), BatchItem(block_id, attempt, number),
                   token=token, model=on_model.get(block_id, run.model), batch_id=batch.pk,
                   secrets=(secret,), output_schema=output_schema)
        for block_id, attempt, number in held.values_list("id", "attempts", "pass_attempts")
    ]
    if outcomes:
        try:
            outcomes_record(run_id=run.pk, outcomes=outcomes, worker=f"batch:{batch.provider_batch_id}",
                            secrets=(secret,), key_revision=None)
        except DatabaseError as exc:
            # Nothing of the chunk was written; the batch stays `ended` and the next poll records
            # it again from the start (results already written are skipped by the fence).
            outcomes_write_failed(run_id=run.pk, outcomes=outcomes, error=exc, function_name=FUNCTION_NAME,
                                  tries=1, gave_up=False)
            raise
        metrics_flush()
    MessageBatch.objects.filter(pk=batch.pk).update(results_recorded=F("results_recorded") + len(outcomes))
    return len(outcomes)


def batch_record_results(batch: MessageBatch) -> int:
    """Stream an ended batch's results into the ledger; then give back any block it did not answer."""
    run = Run.objects.select_related("key").get(pk=batch.run_id)
    assert batch.key is not None  # a key in use by an open batch cannot be deleted
    secret = key_secret(key=batch.key)
    with log_context(run_id=run.pk, key_id=batch.key_id, secrets=(secret,)):
        return _record_results(batch, run, secret)


def _record_results(batch: MessageBatch, run: Run, secret: str) -> int:
    written = 0
    with batch_client(batch) as client:
        chunk: list[Any] = []
        for line in client.messages.batches.results(batch.provider_batch_id):
            chunk.append(line)
            if len(chunk) >= CHUNK:
                written += _record_chunk(batch, run, chunk, secret)
                chunk = []
        if chunk:
            written += _record_chunk(batch, run, chunk, secret)
    # A request with no result line (it should not happen) goes back to work rather than stay held.
    blocks_release(run_id=run.pk, token=batch.lease_token)
    MessageBatch.objects.filter(pk=batch.pk).mark_recorded(now=timezone.now())
    logger.info("batch %s of run %s: %d result(s) recorded", batch.provider_batch_id, run.pk, written)
    return written


def _switch_to_live_if_the_deadline_is_near(batch: MessageBatch, run: Run) -> bool:
    """An auto-mode run whose deadline comes near while its batch is still open goes live: the batch
    is canceled, its unanswered blocks come back as canceled results and are served live."""
    if run.mode != RunMode.AUTO or run.deadline is None or batch.cancel_requested:
        return False
    if run.deadline - timezone.now() > timedelta(seconds=_conf("BATCH_DEADLINE_MARGIN_SECONDS")):
        return False
    Run.objects.filter(pk=run.pk).update(
        effective_mode=RunMode.LIVE,
        mode_reason=f"switched to live: the deadline ({run.deadline:%Y-%m-%d %H:%M} UTC) came near while "
                    "its batch was still open")
    MessageBatch.objects.filter(pk=batch.pk).update(cancel_requested=True)
    batch.cancel_requested = True
    return True


def batch_poll(batch: MessageBatch) -> str:
    """One look at one open batch: returns its status after the look."""
    with log_context(run_id=batch.run_id, key_id=batch.key_id):
        return _poll(batch)


def _poll(batch: MessageBatch) -> str:
    run = Run.objects.get(pk=batch.run_id)
    if run.status in RUN_ENDING and not batch.cancel_requested:
        MessageBatch.objects.filter(pk=batch.pk).update(cancel_requested=True)
        batch.cancel_requested = True
    _switch_to_live_if_the_deadline_is_near(batch, run)
    assert batch.key is not None  # a key in use by an open batch cannot be deleted
    secret = key_secret(key=batch.key)
    try:
        with log_context(secrets=(secret,)), batch_client(batch) as client:
            remote = client.messages.batches.retrieve(batch.provider_batch_id)
            if batch.cancel_requested and remote.processing_status == "in_progress":
                remote = client.messages.batches.cancel(batch.provider_batch_id)
    except anthropic.APIError as exc:
        failure = classify(exc, secrets=(secret,))
        MessageBatch.objects.filter(pk=batch.pk).update(polled_at=timezone.now(), error=str(failure)[:2000])
        logger.warning("batch %s: could not look at it: %s", batch.provider_batch_id, failure)
        return batch.status
    now, counts = timezone.now(), remote.request_counts.model_dump()
    batches = MessageBatch.objects.filter(pk=batch.pk)
    if remote.processing_status != "ended":
        batches.update(polled_at=now, counts=counts, error="")
        return batch.status
    batches.end(ended_at=remote.ended_at or now, polled_at=now, counts=counts)
    batch.refresh_from_db()
    batch_record_results(batch)
    return MessageBatchStatus.RECORDED


def _find_at_provider(batch: MessageBatch) -> str | None:
    """The provider's id of a batch we created but did not get to record: the one created within a
    minute of our row with the same number of requests, that no other row has."""
    taken = set(MessageBatch.objects.exclude(provider_batch_id="")
                .values_list("provider_batch_id", flat=True))
    window = timedelta(seconds=60)
    with batch_client(batch) as client:
        for remote in client.messages.batches.list(limit=100):
            total = sum(remote.request_counts.model_dump().values())
            close = abs(remote.created_at - batch.created_at) <= window
            if close and total == batch.requests and remote.id not in taken:
                return remote.id
    return None


def batch_recover_submitting(batch: MessageBatch) -> str:
    """A row left `submitting` by a crash: adopt its batch if the provider has it, else give back."""
    try:
        found = _find_at_provider(batch)
    except anthropic.APIError as exc:
        logger.warning("batch row %s: cannot list the provider's batches: %s", batch.pk, exc)
        return batch.status
    if found:
        MessageBatch.objects.filter(pk=batch.pk).mark_submitted(provider_batch_id=found, now=timezone.now())
        logger.warning("batch row %s: adopted %s after an interrupted submission", batch.pk, found)
        return MessageBatchStatus.IN_PROGRESS
    blocks_release(run_id=batch.run_id, token=batch.lease_token)
    MessageBatch.objects.filter(pk=batch.pk).abandon(
        error="the provider has no such batch: blocks given back")
    return MessageBatchStatus.ABANDONED


def batches_poll() -> dict[str, int]:
    """Beat: every open batch looked at once; rows stuck submitting recovered."""
    looked = recorded = recovered = 0
    stale = timezone.now() - timedelta(seconds=_conf("BATCH_ADOPT_AFTER_SECONDS"))
    for batch in MessageBatch.objects.submitting().filter(created_at__lt=stale, key__isnull=False):
        recovered += batch_recover_submitting(batch) != MessageBatchStatus.SUBMITTING
    for batch in MessageBatch.objects.open().filter(key__isnull=False):
        looked += 1
        try:
            if batch.status == MessageBatchStatus.ENDED:
                batch_record_results(batch)  # a crash stopped the recording half way: go on
                recorded += 1
            elif batch_poll(batch) == MessageBatchStatus.RECORDED:
                recorded += 1
        except Exception:
            logger.exception("batch %s: could not poll or record it", batch.provider_batch_id)
    return {"looked": looked, "recorded": recorded, "recovered": recovered}
