"""Reseeding: a new pass over an ended (or paused) run, for all its blocks, only the failed ones, or
those matching a filter (status, error code, an old prompt version, the build that produced them:
`pipeline_version`), optionally with another model or prompt. Earlier passes stay readable: Attempt
rows keep each pass's outputs and a RunPass row records what each pass was.
"""

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from apps.core.ids import RunId
from apps.failures.models import PipelineFailure
from apps.providers.prompts import metadata_fields
from apps.providers.prompts import prompt_version as compute_prompt_version
from apps.runs.caching import needs_warm_up
from apps.runs.dispatch import run_dispatch_on_commit
from apps.runs.models import Block, BlockStatus, PassScope, Run, RunPass
from apps.runs.services.lifecycle import RunStateError
from apps.runs.services.retention import retention_expired
from apps.runs.services.submission import SubmissionError, validate_run_options
from apps.runs.transitions import BLOCK_COUNTER, RUN_RESEEDABLE, BlockQuerySet, lock_run

SCOPES = (PassScope.ALL, PassScope.FAILED, PassScope.FILTER)


def _statuses(status: str | Iterable[str] | None) -> list[str]:
    if status is None:
        return []
    values = [status] if isinstance(status, str) else list(status)
    unknown = sorted({v for v in values if v not in BlockStatus.values})
    if unknown:
        raise SubmissionError(f"unknown block status {', '.join(map(repr, unknown))}; "
                              f"known: {', '.join(BlockStatus.values)}", field="status")
    return values


def _selection(run_id: RunId, scope: str, filters: dict[str, Any]) -> BlockQuerySet:
    blocks = Block.objects.filter(run_id=run_id)
    if scope == PassScope.FAILED:
        return blocks.filter(status=BlockStatus.FAILED)
    if scope == PassScope.FILTER:
        if filters.get("status"):
            blocks = blocks.filter(status__in=filters["status"])
        if filters.get("error_code"):
            blocks = blocks.filter(error_code=filters["error_code"])
        if filters.get("prompt_version"):
            blocks = blocks.filter(prompt_version=filters["prompt_version"])
        if filters.get("pipeline_version"):
            blocks = blocks.filter(pipeline_version=filters["pipeline_version"])
    return blocks


def _describe(scope: str, filters: dict[str, Any]) -> str:
    if scope != PassScope.FILTER:
        return f"scope={scope}"
    return ", ".join(f"{name}={value!r}" for name, value in filters.items())


def _record_first_pass(run: Run) -> None:
    """Runs made before passes were recorded at submission have no RunPass row for pass 1: the first
    new pass writes it from the run as it was."""
    if run.passes.filter(number=run.current_pass).exists():
        return
    RunPass.objects.create(
        run=run, number=run.current_pass, scope=PassScope.INITIAL, model=run.model,
        system_prompt=run.system_prompt, prompt_template=run.prompt_template,
        prompt_version=run.prompt_version, pipeline_version=run.pipeline_version,
        selected_blocks=run.total_blocks, created_at=run.created_at,
    )


def run_reseed(*, run_id: RunId, scope: str, status: str | Iterable[str] | None = None,
               error_code: str | None = None, prompt_version: str | None = None,
               pipeline_version: str | None = None, model: str | None = None,
               system_prompt: str | None = None,
               prompt_template: str | None = None) -> Run:
    """Start a new pass over the selected blocks of an ended or paused run.

    The selected blocks go back to pending with a fresh attempt budget (their last output stays until
    the new pass overwrites it), the run's counters drop by exactly the blocks taken back, and the run
    reopens. Raises RunStateError for a run in progress, SubmissionError for bad fields or an empty
    selection."""
    if scope not in SCOPES:
        raise SubmissionError(f"unknown scope {scope!r}; known: {', '.join(SCOPES)}", field="scope")
    filters = {name: value for name, value in (
        ("status", _statuses(status)), ("error_code", error_code), ("prompt_version", prompt_version),
        ("pipeline_version", pipeline_version),
    ) if value}
    if scope == PassScope.FILTER and not filters:
        raise SubmissionError("scope=filter needs at least one of status, error_code, prompt_version, "
                              "pipeline_version", field="scope")
    if scope != PassScope.FILTER and filters:
        name = next(iter(filters))
        raise SubmissionError(f"`{name}` applies only to scope=filter", field=name)

    with transaction.atomic():
        # Run row first, as everywhere in the engine: no block of this run changes under us.
        run = lock_run(run_id)
        if run.status not in RUN_RESEEDABLE:
            raise RunStateError(f"a {run.status} run cannot be reseeded; cancel it or wait until it ends")
        if run.key_id is None:
            raise RunStateError("the run's provider key was deleted; it cannot run again")
        new_model = run.model if model is None else model
        new_system = run.system_prompt if system_prompt is None else system_prompt
        new_template = run.prompt_template if prompt_template is None else prompt_template
        validate_run_options(model=new_model, max_tokens=run.max_tokens, max_attempts=run.max_attempts,
                             parallelism=run.parallelism, prompt_template=new_template,
                             options=run.options or {})

        selected = _selection(run.pk, scope, filters)
        if prompt_template is not None:
            _check_metadata_named(selected, new_template)
        start_pass(run, selected, scope=scope, filters=filters, model=new_model, system_prompt=new_system,
                   prompt_template=new_template, empty=f"no block of this run matches "
                                                   f"{_describe(scope, filters)}",
                   empty_field=next(iter(filters)) if len(filters) == 1 else "scope")
    run.refresh_from_db()
    return run


def _check_metadata_named(selected: BlockQuerySet, template: str) -> None:
    """A new template that names metadata fields (`{metadata.title}`) only for blocks that have them."""
    for name in metadata_fields(template):
        *parents, last = name.split(".")
        lacking = selected.exclude(**{"__".join(["metadata", *parents, "has_key"]): last})
        missing = lacking.order_by("block_index").values_list("uid", flat=True).first()
        if missing is not None:
            raise SubmissionError(f"block {missing!r} has no metadata field {name!r}, which the prompt "
                                  f"template names ({{metadata.{name}}})", field="prompt_template")


def start_pass(run: Run, selected: BlockQuerySet, *, scope: str, filters: dict[str, Any], model: str,
               system_prompt: str, prompt_template: str, empty: str, empty_field: str) -> int:
    """A new pass over `selected` of a run whose row the caller has locked: recorded as a RunPass,
    the blocks back to pending numbering their attempts from 1, the run's counters lowered by exactly
    the blocks taken back, the run reopened and a worker woken. Returns the new pass's number.
    The run's earlier passes keep their RunPass rows as they ended."""
    if run.deleting_at is not None:
        raise RunStateError("this run is being deleted")
    if retention_expired(run):
        raise RunStateError("this run's retention has passed: its inputs are purged, nothing can run again")
    counts = selected.aggregate(
        total=Count("id"),
        in_flight=Count("id", filter=Q(status=BlockStatus.CLAIMED)),
        **{status: Count("id", filter=Q(status=status)) for status in BLOCK_COUNTER},
    )
    if not counts["total"]:
        raise SubmissionError(empty, field=empty_field)
    if counts["in_flight"]:
        # Only a paused run can have calls in flight; their results are written within a timeout.
        raise RunStateError(f"{counts['in_flight']} selected block(s) still have a call in flight; "
                            "try again once they are written")
    _record_first_pass(run)
    new_pass = run.current_pass + 1
    new_prompt_version = compute_prompt_version(system_prompt, prompt_template, run.call_spec.output_schema)
    RunPass.objects.create(
        run=run, number=new_pass, scope=scope, filter=filters, model=model,
        system_prompt=system_prompt, prompt_template=prompt_template, prompt_version=new_prompt_version,
        # The build that starts the pass (its results are stamped by the build that writes them).
        pipeline_version=settings.CONVEYOR["PIPELINE_VERSION"], selected_blocks=counts["total"],
        prior_completed_blocks=run.completed_blocks, prior_failed_blocks=run.failed_blocks,
        prior_canceled_blocks=run.canceled_blocks, prior_cost_usd=run.cost_usd,
    )
    # Their dead-letter rows stay open but are not due while the blocks are back at work: the
    # block's next outcome resolves the row (success) or schedules its replay again (failure).
    PipelineFailure.objects.filter(block__in=selected, resolved_at__isnull=True).update(next_retry_at=None)
    selected.reopen(new_pass=True)
    # A pass that changes what is cached (or comes after the cache expired) warms it again: its
    # first call alone, then the rest.
    spec = replace(run.call_spec, model=model, system_prompt=system_prompt, prompt_template=prompt_template)
    last_call = run.attempts.order_by("-created_at").values_list("created_at", flat=True).first()
    warm_up = needs_warm_up(spec, packed=run.pack_size > 1, warmed_sha256=run.cache_prefix_sha256,
                            last_call_at=last_call, now=timezone.now())
    # Taking a block back undoes exactly the counter its terminal status sat in.
    Run.objects.filter(pk=run.pk).reopen(
        current_pass=new_pass, model=model, system_prompt=system_prompt,
        prompt_template=prompt_template, prompt_version=new_prompt_version,
        **({"cache_warmed": False} if warm_up else {}),
        **{field: F(field) - counts[status] for status, field in BLOCK_COUNTER.items()},
    )
    run_dispatch_on_commit(run_id=run.pk)
    return new_pass
