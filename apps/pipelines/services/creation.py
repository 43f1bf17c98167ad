"""Creating a pipeline: its steps (each a run, made by the run engine's own run_create) and its items,
in one transaction. Anything wrong with any step or item is a PipelineSpecError naming the step and
field (or the item's line), and nothing is created."""

import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.core.errors import InvalidInput
from apps.keys.models import ProviderKey
from apps.pipelines.models import Pipeline, PipelineItem, PipelineStep
from apps.pipelines.templates import (
    TemplateProblem,
    check_reference,
    parse_filter,
    template_references,
)
from apps.providers.prompts import has_metadata_field, metadata_fields
from apps.runs.services import SubmissionError, run_create
from apps.runs.services.submission import BlockSpec

STEP_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
# What a step's settings may hold beyond a run's: its name, input template and filter.
STEP_FIELDS = {"name", "input", "filter"}


class PipelineSpecError(InvalidInput):
    """Bad input for a pipeline, naming the step (`steps.1.input`) or item (`items.3.uid`) at fault."""


def _step_error(index: int, name: str, field: str, message: str) -> PipelineSpecError:
    return PipelineSpecError(f"step {name or index + 1}: {message}", field=f"steps.{index}.{field}")


def check_steps(steps: list[dict[str, Any]]) -> None:
    """Names unique and readable, at most PIPELINE_MAX_STEPS, and every template and filter naming only
    earlier steps and fields their schemas have."""
    limit = settings.CONVEYOR["PIPELINE_MAX_STEPS"]
    if not steps:
        raise PipelineSpecError("a pipeline needs at least one step", field="steps")
    if len(steps) > limit:
        raise PipelineSpecError(f"{len(steps)} steps: a pipeline has at most {limit} (PIPELINE_MAX_STEPS)",
                                field="steps")
    names = [str(step.get("name", "")) for step in steps]
    earlier: dict[str, dict[str, Any] | None] = {}
    for index, step in enumerate(steps):
        name = names[index]
        if not STEP_NAME_RE.match(name):
            raise _step_error(index, name, "name", "a step's name is 1 to 50 of a-z, 0-9 and _, "
                              "starting with a letter")
        if name in earlier:
            raise _step_error(index, name, "name", f"another step is already named {name!r}")
        if index == 0 and step.get("input"):
            raise _step_error(index, name, "input", "the first step's input is the item's input; "
                              "shape it with prompt_template")
        for field in ("input", "filter"):
            text = step.get(field) or ""
            if not text:
                continue
            try:
                references = ([parse_filter(text).reference] if field == "filter"
                              else template_references(text))
                for reference in references:
                    check_reference(reference, earlier=earlier, all_steps=names)
            except TemplateProblem as exc:
                raise _step_error(index, name, field, str(exc)) from None
        earlier[name] = step.get("output_schema")


def default_input(steps: list[dict[str, Any]], index: int) -> str:
    """A later step without an input template reads the step before it's output (its text)."""
    return steps[index].get("input") or f"{{steps.{steps[index - 1]['name']}.output}}"


def _check_items_metadata(items: list[BlockSpec], steps: list[dict[str, Any]]) -> None:
    """Every metadata field a step's templates name, on every item: found now, not at step 3."""
    for step in steps:
        templates = [step.get("prompt_template") or "", step.get("input") or ""]
        names = [name for template in templates for name in metadata_fields(template)]
        for number, item in enumerate(items):
            for name in names:
                if not has_metadata_field(item.metadata, name):
                    raise PipelineSpecError(f"`metadata` has no field {name!r}, which step "
                                            f"{step['name']} names", field=f"items.{number}.metadata")


@transaction.atomic
def pipeline_create(*, owner: Any, key: ProviderKey, steps: list[dict[str, Any]], items: Iterable[BlockSpec],
                    name: str = "", dispatch: bool = True, team: Any = None) -> Pipeline:
    """A pipeline, a run per step (later steps held open, with no block yet) and its items, which
    start in step 1. `steps`: each a run's settings as run_create takes them, plus `name`, `input`
    (later steps) and `filter`."""
    check_steps(steps)
    items = list(items)
    if not items:
        raise PipelineSpecError("a pipeline needs at least one item", field="items")
    _check_items_metadata(items, steps)
    pipeline = Pipeline.objects.create(owner=owner, team=team, name=name, total_items=len(items),
                                       spec={"steps": _json_safe(steps)})
    for index, step in enumerate(steps):
        settings_ = {k: v for k, v in step.items() if k not in STEP_FIELDS}
        try:
            run = run_create(owner=owner, team=team, key=key, blocks=items if index == 0 else [],
                             name=f"{name or 'pipeline'} · {step['name']}"[:200], held_open=index > 0,
                             dispatch=dispatch, **settings_)
        except SubmissionError as exc:
            if exc.line is not None:
                where = f"items.{exc.line - 1}" + (f".{exc.field}" if exc.field else "")
                raise PipelineSpecError(exc.message, field=where) from None
            raise _step_error(index, step["name"], exc.field or "steps", exc.message) from None
        PipelineStep.objects.create(pipeline=pipeline, position=index + 1, name=step["name"], run=run,
                                    input_template=default_input(steps, index) if index else "",
                                    filter=step.get("filter") or "")
    PipelineItem.objects.bulk_create(
        [PipelineItem(pipeline=pipeline, uid=item.uid, input=item.input, metadata=item.metadata)
         for item in items], batch_size=2000)
    return pipeline


def _json_safe(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in step.items()} for step in steps]
