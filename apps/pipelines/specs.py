"""A pipeline's spec as a file (YAML, or JSON, which YAML reads too), for the CLI and the API's
upload: `{name, key, steps: [...]}`, each step as the API's JSON body takes it. Checked as the JSON
API checks it; a problem is a PipelineSpecError naming `spec` or `steps.<i>.<field>`."""

import json
from typing import Any

import yaml
from rest_framework import serializers

from apps.pipelines.serializers import PipelineStepInputSerializer
from apps.pipelines.services.creation import PipelineSpecError

# A spec is settings and prompts, never data: far below this.
MAX_SPEC_BYTES = 1024 * 1024


def spec_load(raw: bytes) -> dict[str, Any]:
    """The spec file's document: a mapping with a `steps` list."""
    if len(raw) > MAX_SPEC_BYTES:
        raise PipelineSpecError(f"the spec is larger than {MAX_SPEC_BYTES:,} bytes", field="spec")
    try:
        document = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise PipelineSpecError("the spec is not UTF-8 text", field="spec") from None
    except yaml.YAMLError as exc:
        raise PipelineSpecError(f"the spec is not YAML or JSON: {exc}", field="spec") from None
    try:
        json.dumps(document)
    except (TypeError, ValueError):
        raise PipelineSpecError("the spec holds a value JSON cannot (a date, a set, a non-text key): quote "
                                "it", field="spec") from None
    if not isinstance(document, dict) or not isinstance(document.get("steps"), list):
        raise PipelineSpecError(
            'expected a mapping with "steps": a list of steps (and "name", "key")', field="spec"
        )
    return document


def spec_steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The spec's steps, validated as the API's JSON body's are."""
    steps = PipelineStepInputSerializer(data=document["steps"], many=True)
    try:
        steps.is_valid(raise_exception=True)
    except serializers.ValidationError as exc:
        detail: Any = exc.detail
        index, errors = next((i, e) for i, e in enumerate(detail) if e)
        field, messages = next(iter(errors.items()))
        message = messages[0] if isinstance(messages, list) and messages else messages
        raise PipelineSpecError(f"step {index + 1}: {message}", field=f"steps.{index}.{field}") from None
    return list(steps.validated_data)
