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
    Reference,
    TemplateProblem,
    check_reference,
    parse_filter,
    template_references,
)
from apps.providers.prompts import has_metadata_field, metadata_fields
from apps.runs.services import SubmissionError, run_create
from apps.runs.services.submission import MAX_UID_LENGTH, BlockSpec

STEP_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
# What a step's settings may hold beyond a run's: its name, input template and filter.
STEP_FIELDS = {"name", "input", "filter", "fan_out", "gather"}
# What a child's uid adds to its parent's: `#` and its index (PIPELINE_MAX_CHILDREN of them at most).
CHILD_SUFFIX = 8


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
    # The open fan-out (its step's index), and the steps that ran on children, by their fan-out step.
    fanned: int | None = None
    children_of: dict[str, str] = {}
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
        if step.get("gather"):
            if fanned is None:
                raise _step_error(index, name, "gather", "a gather step takes items back from their "
                                  "children: it needs a step with fan_out before it")
            if index == fanned + 1:
                raise _step_error(index, name, "gather", f"the step right after {names[fanned]}'s fan-out "
                                  "takes the children one by one; gather in a later step")
            children_of.update({names[i]: names[fanned] for i in range(fanned + 1, index)})
        for field in ("input", "filter"):
            text = step.get(field) or ""
            if not text:
                continue
            try:
                references = ([parse_filter(text).reference] if field == "filter"
                              else template_references(text))
                for reference in references:
                    _check_fan_reference(reference, gather=bool(step.get("gather")) and field == "input",
                                         children_of=children_of)
                    check_reference(reference, earlier=earlier, all_steps=names)
            except TemplateProblem as exc:
                raise _step_error(index, name, field, str(exc)) from None
        if step.get("gather"):
            fanned = None
        if step.get("fan_out"):
            _check_fan_out(steps, index, name, fanned=None if fanned is None else names[fanned])
            fanned = index
        earlier[name] = step.get("output_schema")


def _check_fan_reference(reference: Reference, *, gather: bool,
                         children_of: dict[str, str]) -> None:
    """`{children}` only in a gather step's input; a step after a gather does not read the steps that
    ran on the children (their outputs are many per item: the gather step reads them as `{children}`)."""
    if reference.root == "children" and not gather:
        raise TemplateProblem("only a gather step's input reads {children}")
    if reference.root == "steps" and reference.step in children_of:
        raise TemplateProblem(f"names step {reference.step!r}, which ran on the child items of step "
                              f"{children_of[reference.step]!r}: a gather step reads them as {{children}}")


def _check_fan_out(steps: list[dict[str, Any]], index: int, name: str, *, fanned: str | None) -> None:
    """A fan-out field is an array of the step's output_schema, allowing at most PIPELINE_MAX_CHILDREN
    elements; not on the last step, and not inside another fan-out."""
    field = str(steps[index]["fan_out"])
    if fanned is not None:
        raise _step_error(index, name, "fan_out", f"step {fanned} already fans out and nothing gathers it "
                          "yet: a fan-out inside a fan-out is not supported")
    if index == len(steps) - 1:
        raise _step_error(index, name, "fan_out", "the last step cannot fan out: no step takes the children")
    node: Any = steps[index].get("output_schema")
    if node is None:
        raise _step_error(index, name, "fan_out", f"fans out {field!r}, but the step writes free text (it "
                          "has no output_schema)")
    for part in field.split("."):
        properties = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(properties, dict) or part not in properties:
            raise _step_error(index, name, "fan_out", f"fans out {field!r}, which the step's output_schema "
                              "does not have")
        node = properties[part]
    if not isinstance(node, dict) or node.get("type") != "array":
        raise _step_error(index, name, "fan_out", f"fans out {field!r}, which is not an array in the step's "
                          "output_schema")
    limit = settings.CONVEYOR["PIPELINE_MAX_CHILDREN"]
    most = node.get("maxItems")
    if isinstance(most, int) and most > limit:
        raise _step_error(index, name, "fan_out", f"{field!r} allows {most} children (maxItems); an item has "
                          f"at most {limit} (PIPELINE_MAX_CHILDREN)")


def default_input(steps: list[dict[str, Any]], index: int) -> str:
    """A later step without an input template reads the step before it's output (its text); a step
    right after a fan-out, its child's own input (the array's element); a gather step, `{children}`."""
    if steps[index].get("input"):
        return str(steps[index]["input"])
    if steps[index].get("gather"):
        return "{children}"
    if steps[index - 1].get("fan_out"):
        return "{input}"
    return f"{{steps.{steps[index - 1]['name']}.output}}"


def _check_child_uids(items: list[BlockSpec], steps: list[dict[str, Any]]) -> None:
    """A child's uid is `<parent uid>#<index>`: with a fan-out, a user's uid has no `#` and room for it."""
    if not any(step.get("fan_out") for step in steps):
        return
    for number, item in enumerate(items):
        if "#" in item.uid:
            raise PipelineSpecError("a pipeline that fans out keeps `#` for its child items' uids",
                                    field=f"items.{number}.uid")
        if len(item.uid) > MAX_UID_LENGTH - CHILD_SUFFIX:
            raise PipelineSpecError(f"a pipeline that fans out takes uids of at most "
                                    f"{MAX_UID_LENGTH - CHILD_SUFFIX} characters (its children's add "
                                    "`#<index>`)", field=f"items.{number}.uid")


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
    _check_child_uids(items, steps)
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
                                    filter=step.get("filter") or "", fan_out=step.get("fan_out") or "",
                                    gather=bool(step.get("gather")))
    PipelineItem.objects.bulk_create(
        [PipelineItem(pipeline=pipeline, uid=item.uid, input=item.input, metadata=item.metadata)
         for item in items], batch_size=2000)
    return pipeline


def _json_safe(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in step.items()} for step in steps]
