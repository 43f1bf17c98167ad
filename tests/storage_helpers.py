"""Runs with everything a run can have (blocks with outputs and usage, attempts, a dead-letter row, a
diagnostic entry, passes), made through the engine's own services without a provider: for the
retention and deletion tests."""

from decimal import Decimal
from typing import Any

from apps.failures.models import DiagnosticLog, EventCode, LogLevel, PipelineFailure
from apps.providers.errors import FailureKind, ProviderFailure
from apps.providers.usage import TokenUsage
from apps.runs.models import Run
from apps.runs.services import blocks_claim, outcomes_record
from apps.runs.services.decisions import Outcome


def ended_run(
    owner: Any, key: Any, n: int = 6, *, fail: frozenset[str] = frozenset({"b0"}), **options: Any
) -> Run:
    """n blocks, metadata on each; those in `fail` fail for good (a dead-letter row with a payload),
    the others succeed with an output, 100 input and 20 output tokens and $0.001 each."""
    from apps.runs.services import BlockSpec, run_create

    blocks = [BlockSpec(uid=f"b{i}", input=f"the text of block {i}", metadata={"row": i}) for i in range(n)]
    run = run_create(owner=owner, key=key, blocks=blocks, model="claude-haiku-4-5", max_attempts=1, **options)
    claim = blocks_claim(run_id=run.pk, limit=10_000, worker="test")
    outcomes = [
        Outcome(
            block_id=b.id,
            lease_token=claim.lease_token,
            attempt=b.attempt,
            usage=TokenUsage(input_tokens=100, output_tokens=20),
            cost_usd=Decimal("0.001"),
            payload_snapshot={"messages": [{"content": f"the text of {b.uid}"}]},
            failure=ProviderFailure(
                FailureKind.RETRYABLE, "api_error", "the provider broke", http_status=500
            ),
        )
        if b.uid in fail
        else Outcome(
            block_id=b.id,
            lease_token=claim.lease_token,
            attempt=b.attempt,
            usage=TokenUsage(input_tokens=100, output_tokens=20),
            cost_usd=Decimal("0.001"),
            output=f"output of {b.uid}",
            latency_ms=120,
        )
        for b in claim.blocks
    ]
    outcomes_record(run_id=run.pk, outcomes=outcomes, worker="test")
    for block in run.blocks.filter(uid__in=fail):
        DiagnosticLog.objects.create(
            function_name="test",
            function_version="1",
            log_level=LogLevel.ERROR,
            event_code=EventCode.DOWNSTREAM_CALL_FAILED,
            message="it broke",
            metadata={"excerpt": block.input},
            run=run,
            block=block,
        )
    run.refresh_from_db()
    assert run.status == "complete", run.status
    return run


def rows_of(run_id: Any) -> dict[str, int]:
    from apps.runs.models import Attempt, Block, RunPass
    from apps.webhooks.models import WebhookDelivery

    return {
        "runs": Run.objects.filter(pk=run_id).count(),
        "blocks": Block.objects.filter(run_id=run_id).count(),
        "attempts": Attempt.objects.filter(run_id=run_id).count(),
        "failures": PipelineFailure.objects.filter(run_id=run_id).count(),
        "diagnostics": DiagnosticLog.objects.filter(run_id=run_id).count(),
        "passes": RunPass.objects.filter(run_id=run_id).count(),
        "deliveries": WebhookDelivery.objects.filter(run_id=run_id).count(),
    }
