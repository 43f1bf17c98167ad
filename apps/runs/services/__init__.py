"""The run engine's operations. Views, tasks, admin actions and commands all call these."""

from apps.runs.services.claiming import Claim, blocks_claim
from apps.runs.services.decisions import Outcome
from apps.runs.services.finalize import run_finalize
from apps.runs.services.lifecycle import (
    RunStateError,
    run_cancel,
    run_pause,
    run_resume,
    run_set_budget,
    runs_pause_for_key,
    runs_resume_for_key,
)
from apps.runs.services.outcomes import outcomes_record
from apps.runs.services.recovery import leases_expire, pump
from apps.runs.services.submission import (
    BlockSpec,
    SubmissionError,
    parse_jsonl,
    run_create,
    run_create_idempotent,
)

__all__ = [
    "BlockSpec",
    "Claim",
    "Outcome",
    "RunStateError",
    "SubmissionError",
    "blocks_claim",
    "leases_expire",
    "outcomes_record",
    "parse_jsonl",
    "pump",
    "run_cancel",
    "run_create",
    "run_create_idempotent",
    "run_finalize",
    "run_pause",
    "run_resume",
    "run_set_budget",
    "runs_pause_for_key",
    "runs_resume_for_key",
]
