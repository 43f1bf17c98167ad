"""Cancel, pause and resume a whole pipeline, or one step of it. Each step is a run, so these are the
run engine's own operations (run_cancel, run_pause, run_resume) on the steps' runs, taken in position
order (the order the handoff locks runs in), plus the pipeline's own status, moved by one conditional
UPDATE (two concurrent cancels: the second finds it canceling and is refused).

A canceled pipeline's pending blocks are canceled at once; calls in flight finish and are recorded,
and a success among them meets a canceling next step, so its item stops there. The pipeline ends
(`canceling -> canceled`) exactly once, when the last step's run has ended (pipeline_settle)."""

from collections.abc import Callable
from typing import Any

from django.db import transaction

from apps.core.errors import StateConflict
from apps.pipelines.models import Pipeline, PipelineStep
from apps.pipelines.services.handoff import items_stop_stuck, pipeline_settle
from apps.runs.models import Run
from apps.runs.services import run_cancel, run_pause, run_resume
from apps.runs.services.lifecycle import RunStateError
from apps.runs.transitions import RUN_CANCELABLE, RUN_PAUSABLE, RunStatus

ACTIONS = ("cancel", "pause", "resume")


class PipelineStateError(StateConflict):
    """The pipeline (or its step) is not in a state that allows this operation."""


def _steps(pipeline_id: Any) -> list[PipelineStep]:
    return list(PipelineStep.objects.filter(pipeline_id=pipeline_id).order_by("position"))


def _settle_after_commit(pipeline_id: Any) -> None:
    transaction.on_commit(lambda: pipeline_settle(pipeline_id=pipeline_id), robust=True)


def pipeline_cancel(*, pipeline_id: Any) -> Pipeline:
    """Returns the pipeline after the cancel committed: `canceled` already if no call was in flight."""
    with transaction.atomic():
        pipeline = Pipeline.objects.get(pk=pipeline_id)
        if not Pipeline.objects.filter(pk=pipeline_id).begin_canceling():
            raise PipelineStateError(f"a {pipeline.status} pipeline cannot be canceled")
        for step in _steps(pipeline_id):
            if Run.objects.filter(pk=step.run_id, status__in=RUN_CANCELABLE).exists():
                run_cancel(run_id=step.run_id)
            items_stop_stuck(step)
        _settle_after_commit(pipeline_id)
    pipeline.refresh_from_db()
    return pipeline


@transaction.atomic
def pipeline_pause(*, pipeline_id: Any) -> Pipeline:
    """Every step whose run is queued or running pauses (nothing more is claimed; calls in flight
    finish, and their successes are handed on into paused steps, where they wait)."""
    pipeline = Pipeline.objects.get(pk=pipeline_id)
    if not Pipeline.objects.filter(pk=pipeline_id).pause():
        raise PipelineStateError(f"a {pipeline.status} pipeline cannot be paused")
    for step in _steps(pipeline_id):
        if Run.objects.filter(pk=step.run_id, status__in=RUN_PAUSABLE).exists():
            run_pause(run_id=step.run_id, reason="its pipeline was paused")
    pipeline.refresh_from_db()
    return pipeline


def pipeline_resume(*, pipeline_id: Any) -> tuple[Pipeline, dict[str, str]]:
    """Every paused step resumes; returns the pipeline and the steps that stay paused, with why (a
    budget that cannot pay for the next block: raise it, and the step resumes)."""
    refused: dict[str, str] = {}
    with transaction.atomic():
        pipeline = Pipeline.objects.get(pk=pipeline_id)
        if not Pipeline.objects.filter(pk=pipeline_id).resume():
            raise PipelineStateError(f"a {pipeline.status} pipeline cannot be resumed")
        for step in _steps(pipeline_id):
            if Run.objects.filter(pk=step.run_id, status=RunStatus.PAUSED).exists():
                try:
                    run_resume(run_id=step.run_id)
                except RunStateError as exc:
                    refused[step.name] = exc.message
    pipeline.refresh_from_db()
    return pipeline, refused


STEP_ACTIONS: dict[str, Callable[..., Run]] = {"cancel": run_cancel, "pause": run_pause, "resume": run_resume}


def pipeline_step_act(*, pipeline_id: Any, step_name: str, action: str) -> Run:
    """Cancel, pause or resume one step (its run): the run engine's operation, refused as it refuses.
    A canceled step stops the items in it and those still coming; the pipeline goes on with the rest."""
    step = PipelineStep.objects.get(pipeline_id=pipeline_id, name=step_name)  # DoesNotExist: no such step
    with transaction.atomic():
        run = STEP_ACTIONS[action](run_id=step.run_id)
        if action == "cancel":
            items_stop_stuck(step)
        _settle_after_commit(pipeline_id)
    return run
