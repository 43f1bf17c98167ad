"""A pipeline's results joined: one row per item, a column per step's output field.

Columns: `uid`, `parent_uid` (a fan-out's child), `status`, `step` (where it is or stopped), then for
each step either `<step>.<field>` for every top-level field of its output_schema, or `<step>.output`
for a free-text step, and `<step>.stale` (its result there was produced from an output since
reseeded). A cell is empty where the item has no result in that step. Rows are built in chunks of
CHUNK items, a query per chunk, and streamed: JSON (an array of objects), JSONL or CSV."""

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from apps.pipelines.models import Pipeline, PipelineItem
from apps.runs.models import Block, BlockStatus

CHUNK = 500
FORMATS = ("json", "jsonl", "csv")
CONTENT_TYPES = {"json": "application/json", "jsonl": "application/x-ndjson", "csv": "text/csv"}


def _step_fields(pipeline: Pipeline) -> list[tuple[str, Any, int, list[str] | None]]:
    """(name, run id, position, its schema's top-level fields or None for free text) per step."""
    schemas = {s.get("name"): s.get("output_schema") for s in (pipeline.spec or {}).get("steps", [])}
    fields = []
    for name, run_id, position in pipeline.steps.order_by("position").values_list(
        "name", "run_id", "position"
    ):
        schema = schemas.get(name)
        properties = schema.get("properties") if isinstance(schema, dict) else None
        fields.append((name, run_id, position, list(properties) if isinstance(properties, dict) else None))
    return fields


def joined_columns(pipeline: Pipeline) -> list[str]:
    columns = ["uid", "parent_uid", "status", "step"]
    for name, _, _, fields in _step_fields(pipeline):
        columns += [f"{name}.{f}" for f in fields] if fields is not None else [f"{name}.output"]
        columns.append(f"{name}.stale")
    return columns


def joined_rows(pipeline: Pipeline) -> Iterator[dict[str, Any]]:
    steps = _step_fields(pipeline)
    names = {position: name for name, _, position, _ in steps}
    runs = {run_id: (name, position, fields) for name, run_id, position, fields in steps}
    items = PipelineItem.objects.filter(pipeline=pipeline).order_by("id")
    last = 0
    while True:
        chunk = list(
            items.filter(id__gt=last).values_list(
                "id", "uid", "parent__uid", "status", "position", "stale_steps"
            )[:CHUNK]
        )
        if not chunk:
            return
        last = chunk[-1][0]
        outputs: dict[str, dict[Any, tuple[str | None, Any]]] = {}
        for run_id, uid, text, document in Block.objects.filter(
            run_id__in=list(runs),
            uid__in=[row[1] for row in chunk],
            status=BlockStatus.SUCCEEDED,
        ).values_list("run_id", "uid", "output", "output_json"):
            outputs.setdefault(uid, {})[run_id] = (text, document)
        for _, uid, parent_uid, status, position, stale in chunk:
            row: dict[str, Any] = {
                "uid": uid,
                "parent_uid": parent_uid,
                "status": status,
                "step": names.get(position, ""),
            }
            for run_id, (name, step_position, fields) in runs.items():
                text, document = outputs.get(uid, {}).get(run_id, (None, None))
                if fields is None:
                    row[f"{name}.output"] = text
                else:
                    for field in fields:
                        row[f"{name}.{field}"] = document.get(field) if isinstance(document, dict) else None
                row[f"{name}.stale"] = step_position in (stale or [])
            yield row


def joined_export(pipeline: Pipeline, fmt: str) -> Iterator[str]:
    """The joined rows as text chunks in `fmt` (json, jsonl or csv)."""
    rows = joined_rows(pipeline)
    if fmt == "csv":
        columns = joined_columns(pipeline)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for number, row in enumerate(rows, start=1):
            writer.writerow({k: _cell(v) for k, v in row.items()})
            if number % CHUNK == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
    elif fmt == "jsonl":
        for row in rows:
            yield json.dumps(row, ensure_ascii=False) + "\n"
    else:
        yield "["
        for number, row in enumerate(rows):
            yield ("," if number else "") + json.dumps(row, ensure_ascii=False)
        yield "]"


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value
