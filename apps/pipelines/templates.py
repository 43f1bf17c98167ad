"""A later step's input and filter: what they may name, checked at create; rendered at handoff.

A step's input template names the item's input (`{input}`), its metadata (`{metadata.title}`) and any
earlier step's output: its text (`{steps.grade.output}`) or a field of its structured output
(`{steps.grade.output.score}`, nested: `{steps.grade.output.author.name}`). A gather step also reads
`{children}`: its item's children's outputs of the step before, as a JSON array. Other braces are text.

A filter is one comparison, `<name> <op> <literal>`: a name as above without braces, an operator of
`< <= > >= == !=`, a JSON literal (`60`, `"spam"`, `true`, `null`). It is parsed, never evaluated as
code. An item whose named value is missing, or of another type than the literal, is not taken.
"""

import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PLACEHOLDER_RE = re.compile(
    r"\{(input|children|metadata\.[^{}\s]+|steps\.[A-Za-z0-9_]+\.output(?:\.[^{}\s]+)?)\}")
NAME_RE = re.compile(r"^(input|children|metadata\.[^\s]+|steps\.[A-Za-z0-9_]+\.output(?:\.[^\s]+)?)$")
FILTER_RE = re.compile(r"^\s*(\S+)\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$")
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
_MISSING = object()


class TemplateProblem(ValueError):
    """A name a template or filter may not use here, said as a sentence."""


@dataclass(frozen=True)
class StepOutput:
    text: str | None
    document: Any = None


@dataclass(frozen=True)
class ItemContext:
    """What a step's template and filter read of one item: its input, metadata, earlier outputs."""

    input: str
    metadata: dict[str, Any] | None
    outputs: Mapping[str, StepOutput] = field(default_factory=dict)
    # A gather step's item: its children's outputs of the step before, in their order (each the
    # structured document, or the text).
    children: list[Any] | None = None


@dataclass(frozen=True)
class Reference:
    """A parsed name: `steps.grade.output.score` is step "grade", path ["score"]."""

    root: str  # "input", "children", "metadata" or "steps"
    step: str = ""
    path: tuple[str, ...] = ()


def parse_name(name: str) -> Reference:
    if not NAME_RE.match(name):
        raise TemplateProblem(f"{name!r} is not a name a step may read: use input, metadata.<field>, "
                              "steps.<step>.output or steps.<step>.output.<field>")
    if name in ("input", "children"):
        return Reference(name)
    if name.startswith("metadata."):
        return Reference("metadata", path=tuple(name.split(".")[1:]))
    parts = name.split(".")
    return Reference("steps", step=parts[1], path=tuple(parts[3:]))


def template_references(template: str) -> list[Reference]:
    return [parse_name(match.group(1)) for match in PLACEHOLDER_RE.finditer(template)]


@dataclass(frozen=True)
class Filter:
    reference: Reference
    op: str
    literal: Any

    def takes(self, context: ItemContext) -> bool:
        value = resolve(self.reference, context)
        if value is _MISSING:
            return False
        numbers = (int, float)
        if isinstance(self.literal, bool) or isinstance(value, bool):
            comparable = isinstance(value, bool) and isinstance(self.literal, bool)
        elif isinstance(self.literal, numbers):
            comparable = isinstance(value, numbers)
        else:
            comparable = self.literal is None or type(value) is type(self.literal)
        if not comparable:
            return self.op == "!="
        try:
            return OPERATORS[self.op](value, self.literal)
        except TypeError:  # None ordered against None
            return False


def parse_filter(text: str) -> Filter:
    match = FILTER_RE.match(text)
    if not match:
        raise TemplateProblem(f"{text!r} is not a filter: write <name> <op> <value>, e.g. "
                              "steps.grade.output.score < 60 (op one of < <= > >= == !=)")
    name, op, raw = match.groups()
    try:
        literal = json.loads(raw)
    except ValueError:
        raise TemplateProblem(f"{raw!r} is not a JSON value (a number, \"text\", true, false or null)"
                              ) from None
    if isinstance(literal, dict | list):
        raise TemplateProblem(f"{raw!r}: a filter compares with a number, text, true, false or null")
    return Filter(parse_name(name), op, literal)


def resolve(reference: Reference, context: ItemContext) -> Any:
    if reference.root == "input":
        return context.input
    if reference.root == "children":
        return _MISSING if context.children is None else context.children
    if reference.root == "metadata":
        return _walk(context.metadata, reference.path)
    output = context.outputs.get(reference.step)
    if output is None:
        return _MISSING
    if not reference.path:
        return output.text if output.text is not None else _MISSING
    return _walk(output.document, reference.path)


def _walk(value: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def render(template: str, context: ItemContext) -> str:
    """The template with every name replaced; a name the item lacks is a TemplateProblem (the item
    stops there, saying which)."""
    def value(match: re.Match[str]) -> str:
        found = resolve(parse_name(match.group(1)), context)
        if found is _MISSING:
            raise TemplateProblem(f"the item has no {match.group(1)}")
        return found if isinstance(found, str) else json.dumps(found, ensure_ascii=False)

    return PLACEHOLDER_RE.sub(value, template)


def check_reference(reference: Reference, *, earlier: Mapping[str, dict[str, Any] | None],
                    all_steps: list[str]) -> None:
    """A step may read only steps before it, and only fields their output schemas have.
    `earlier`: the names of the steps before this one, with their output schema (None: free text)."""
    if reference.root != "steps":
        return
    if reference.step not in earlier:
        if reference.step in all_steps:
            raise TemplateProblem(f"names step {reference.step!r}, which does not come before it")
        raise TemplateProblem(f"names step {reference.step!r}, which this pipeline does not have")
    if not reference.path:
        return
    schema = earlier[reference.step]
    if schema is None:
        raise TemplateProblem(f"names steps.{reference.step}.output.{'.'.join(reference.path)}, but step "
                              f"{reference.step!r} writes free text (it has no output_schema)")
    node: Any = schema
    for part in reference.path:
        properties = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(properties, dict) or part not in properties:
            raise TemplateProblem(f"names field {'.'.join(reference.path)!r}, which the output_schema of "
                                  f"step {reference.step!r} does not have")
        node = properties[part]
