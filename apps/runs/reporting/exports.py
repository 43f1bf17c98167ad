"""A run's results, and its failures, for analysis: JSONL, CSV or Parquet, streamed in bounded memory.

- JSONL: one object per block as the API's results/ has always written it (`output` as text, and
  `output_json`, `metadata` as they are).
- CSV and Parquet: one row per block, flat, with a header row (CSV) or a typed schema whose fields
  carry a description (Parquet). A structured run's document is flattened into `output.<field>`
  columns from its JSON Schema (nested objects as `output.author.name`; arrays, unions and anything
  else as JSON text in one column); a free-text run has one `output` column. Every top-level metadata
  key of the run is a `metadata.<key>` column, typed when every value of it has one JSON type.

Rows come from a server-side cursor a chunk at a time (apps.runs.selectors.run_result_rows); CSV is
written a few hundred rows per chunk and Parquet a row group (PARQUET_ROW_GROUP rows) at a time, each
chunk handed on as soon as it is made. Memory is a chunk's worth of rows, whatever the run's size
(measured: docs/architecture.md, "Exports").
"""

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from operator import itemgetter
from typing import Any

from django.db import connection

from apps.core.ids import RunId
from apps.failures.models import PipelineFailure, failure_state
from apps.runs.models import Block, Run
from apps.runs.selectors import run_result_rows, run_results

FORMATS = ("jsonl", "csv", "parquet")
CONTENT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8",
                 "parquet": "application/vnd.apache.parquet"}
JSONL_BATCH = 500
CSV_BATCH = 500
PARQUET_ROW_GROUP = 10_000
# Kinds of a column: what a CSV cell is written as and what Arrow type a Parquet column has.
STRING, INTEGER, NUMBER, BOOLEAN, JSON, DECIMAL, MOMENT = (
    "string", "integer", "number", "boolean", "json", "decimal", "moment")
SCALAR_KINDS = {"string": STRING, "integer": INTEGER, "number": NUMBER, "boolean": BOOLEAN}
MAX_FLATTEN_DEPTH = 8


_dumps = json.JSONEncoder(ensure_ascii=False).encode


@dataclass(frozen=True)
class Column:
    """One column of a flat export: its name (the header), kind, what it holds, and how a row's
    value is read."""

    name: str
    kind: str
    description: str
    read: Callable[[dict[str, Any]], Any]

    def typed(self) -> Callable[[dict[str, Any]], Any]:
        """How a row's value of this column is read as its kind: JSON text for anything structured in
        a JSON or text column, else the value itself (None for null)."""
        read = self.read
        if self.kind not in (JSON, STRING):
            return read

        def text(row: dict[str, Any]) -> Any:
            value = read(row)
            return value if value is None or value.__class__ is str else _dumps(value)

        return text


def field(name: str, kind: str, description: str) -> Column:
    return Column(name, kind, description, itemgetter(name))


def _at(path: tuple[str, ...], source: str) -> Callable[[dict[str, Any]], Any]:
    def read(row: dict[str, Any]) -> Any:
        value = row.get(source)
        for part in path:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    return read


# --- columns ----------------------------------------------------------------------------------------

def _resolve(schema: Any, root: dict[str, Any]) -> Any:
    """Follow a local `$ref` (into $defs / definitions; a checked schema has no others)."""
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < MAX_FLATTEN_DEPTH:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        schema, seen = target, seen + 1
    return schema


def _leaf_kind(schema: Any) -> str:
    """The column kind of a schema that is not flattened further: one scalar type (null allowed
    beside it), an enum or const of one type, else JSON text."""
    if not isinstance(schema, dict):
        return JSON
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    values = schema.get("enum", [schema["const"]] if "const" in schema else None)
    if not types and values:
        types = sorted({_json_type(v) for v in values})
    kinds = {SCALAR_KINDS.get(t, JSON) for t in types if t != "null"}
    if len(kinds) == 1:
        return kinds.pop()
    if kinds == {INTEGER, NUMBER}:
        return NUMBER
    return JSON


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else "object"


def schema_columns(schema: dict[str, Any]) -> list[Column]:
    """`output.<path>` columns from a run's JSON Schema: objects with properties are flattened (into
    nested objects too); every other schema is one column."""
    columns: list[Column] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        node = _resolve(node, schema)
        properties = node.get("properties") if isinstance(node, dict) else None
        flat = isinstance(properties, dict) and bool(properties) and "anyOf" not in node
        if flat and isinstance(properties, dict) and len(path) < MAX_FLATTEN_DEPTH:
            for name, prop in properties.items():
                walk(prop, (*path, name))
            return
        description = (node.get("description") if isinstance(node, dict) else None) or ""
        name = ".".join(("output", *path))
        columns.append(Column(name, _leaf_kind(node),
                              description or f"the answer's field {'.'.join(path) or '(whole)'}",
                              _at(path, "output_json")))

    walk(schema, ())
    return columns


def metadata_kinds(run_id: RunId) -> dict[str, str]:
    """Every top-level metadata key of the run's blocks, with its column kind: the one JSON type of
    all its values (null aside), else JSON text. One pass over the run's metadata, in SQL on
    PostgreSQL."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT e.key, array_agg(DISTINCT jsonb_typeof(e.value)), "
                f"bool_and(jsonb_typeof(e.value) <> 'number' OR e.value::text ~ '^-?[0-9]+$') "
                f"FROM {Block._meta.db_table} b, jsonb_each(b.metadata) e "
                f"WHERE b.run_id = %s::uuid AND jsonb_typeof(b.metadata) = 'object' "
                f"GROUP BY e.key ORDER BY e.key",
                [str(run_id)],
            )
            found = {key: ({t for t in types if t != "null"}, integral) for key, types, integral in cursor}
    else:
        found = {}
        for metadata in Block.objects.filter(run_id=run_id, metadata__isnull=False).values_list(
                "metadata", flat=True).iterator():
            for key, value in (metadata or {}).items():
                types, integral = found.get(key, (set(), True))
                kind = _json_type(value)
                types.add("number" if kind in ("integer", "number") else kind)
                found[key] = (types - {"null"}, integral and kind != "number")
        found = dict(sorted(found.items()))
    kinds = {}
    for key, (types, integral) in found.items():
        if types == {"number"}:
            kinds[key] = INTEGER if integral else NUMBER
        elif len(types) == 1 and (kind := next(iter(types))) in SCALAR_KINDS:
            kinds[key] = SCALAR_KINDS[kind]
        else:
            kinds[key] = JSON if types else STRING
    return kinds


def metadata_columns(run_id: RunId) -> list[Column]:
    return [Column(f"metadata.{key}", kind, f"the block's metadata field {key}", _at((key,), "metadata"))
            for key, kind in metadata_kinds(run_id).items()]


def result_columns(run: Run) -> list[Column]:
    """The columns of a run's flat results export, in order."""
    if run.output_schema:
        output = schema_columns(run.output_schema)
    else:
        output = [field("output", STRING, "the answer's text (empty until the block succeeds)")]
    return [
        field("uid", STRING, "the block's uid"),
        field("block_index", INTEGER, "its position in the run, from 0"),
        field("status", STRING, "pending, claimed, succeeded, failed or canceled"),
        *output,
        *metadata_columns(run.pk),
        field("error_code", STRING, "why the block failed (empty unless failed)"),
        field("error_message", STRING, "the failure in words"),
        field("attempts", INTEGER, "calls claimed for it in the current pass"),
        field("input_tokens", INTEGER, "input tokens billed for it (every call, every pass)"),
        field("output_tokens", INTEGER, "output tokens billed for it"),
        field("cache_creation_input_tokens", INTEGER, "tokens written to the prompt cache"),
        field("cache_read_input_tokens", INTEGER, "tokens read from the prompt cache"),
        field("cost_usd", DECIMAL, "what its calls cost, in USD"),
        field("model", STRING, "the model that answered"),
        field("prompt_version", STRING, "the prompt's version stamp"),
        field("pass_number", INTEGER, "the pass that wrote its result"),
    ]


def failure_columns(run: Run) -> list[Column]:
    """The columns of a run's flat failures export (its dead-letter rows)."""
    return [
        field("uid", STRING, "the failed block's uid"),
        field("block_index", INTEGER, "its position in the run, from 0"),
        *metadata_columns(run.pk),
        field("error_code", STRING, "why it failed (output_invalid: no document of the run's schema)"),
        field("error_message", STRING, "the failure in words"),
        field("http_status", INTEGER, "the provider's answer (200 for an answer that was refused)"),
        field("attempt_count", INTEGER, "every attempt the block had, over replays"),
        field("replay_count", INTEGER, "how often it was put back to work"),
        field("state", STRING, "scheduled, parked or resolved"),
        field("failed_at", MOMENT, "when it last failed"),
        field("next_retry_at", MOMENT, "when it is replayed (scheduled)"),
        field("resolved_at", MOMENT, "when it was resolved"),
        field("resolution_note", STRING, "why it was resolved"),
        field("raw_output", STRING, "the answer the run's schema refused, or the text a broken stream "
                                    "left, as received"),
    ]


# --- rows -------------------------------------------------------------------------------------------

FAILURE_FIELDS = ("block__uid", "block__block_index", "block__metadata", "error_code", "error_message",
                  "http_status", "attempt_count", "replay_count", "failed_at", "next_retry_at",
                  "resolved_at", "resolution_note", "context")


def run_failure_rows(*, run_id: RunId, chunk_size: int = 500) -> Iterator[dict[str, Any]]:
    """A run's dead-letter rows, flat, in block order, streamed."""
    rows = (PipelineFailure.objects.filter(run_id=run_id)
            .order_by("block__block_index", "failed_at", "pk").values_list(*FAILURE_FIELDS)
            .iterator(chunk_size=chunk_size))
    for row in rows:
        data = dict(zip(FAILURE_FIELDS, row, strict=True))
        context = data.pop("context") or {}
        yield {
            "uid": data.pop("block__uid"), "block_index": data.pop("block__block_index"),
            "metadata": data.pop("block__metadata"), **data, "state": str(failure_state(data)),
            "raw_output": context.get("raw_output") or context.get("partial_text") or None,
        }


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else str(v) if isinstance(v, Decimal) else v)
            for k, v in row.items()}


# --- writers ----------------------------------------------------------------------------------------

def jsonl_chunks(rows: Iterable[dict[str, Any]], *, batch: int = JSONL_BATCH) -> Iterator[bytes]:
    """Rows as JSONL, a batch of lines per chunk: one write per line would dominate the cost."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    lines: list[str] = []
    for row in rows:
        lines.append(encode(row))
        if len(lines) >= batch:
            yield ("\n".join(lines) + "\n").encode()
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode()


def csv_cell(column: Column) -> Callable[[dict[str, Any]], Any]:
    """How a row's value of this column is written in a CSV cell: empty for null, `true` / `false`,
    JSON text for anything structured, ISO 8601 for a moment. Made once per column: this runs for
    every cell of the export."""
    read, kind = column.read, column.kind

    def json_cell(row: dict[str, Any]) -> Any:
        value = read(row)
        return "" if value is None else _dumps(value)

    def string_cell(row: dict[str, Any]) -> Any:
        value = read(row)
        return "" if value is None else value if value.__class__ is str else _dumps(value)

    def boolean_cell(row: dict[str, Any]) -> Any:
        value = read(row)
        return "" if value is None else "true" if value else "false"

    def moment_cell(row: dict[str, Any]) -> Any:
        value = read(row)
        return "" if value is None else value.isoformat()

    def plain_cell(row: dict[str, Any]) -> Any:
        value = read(row)
        return "" if value is None else value

    return {JSON: json_cell, STRING: string_cell, BOOLEAN: boolean_cell, MOMENT: moment_cell}.get(
        kind, plain_cell)


def csv_chunks(columns: list[Column], rows: Iterable[dict[str, Any]], *, batch: int = CSV_BATCH
               ) -> Iterator[bytes]:
    """A header row, then one row per result, a batch of rows per chunk (RFC 4180, UTF-8)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.name for c in columns])
    cells = [csv_cell(c) for c in columns]
    for count, row in enumerate(rows, start=1):
        writer.writerow([cell(row) for cell in cells])
        if count % batch == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


class _Drain:
    """Where the Parquet writer writes: bytes kept until taken, so each row group is handed on as
    soon as it is written."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def arrow_schema(columns: list[Column], metadata: dict[str, str]) -> Any:
    import pyarrow as pa

    types = {STRING: pa.string(), INTEGER: pa.int64(), NUMBER: pa.float64(), BOOLEAN: pa.bool_(),
             JSON: pa.string(), DECIMAL: pa.decimal128(16, 8), MOMENT: pa.timestamp("us", tz="UTC")}
    fields = [pa.field(c.name, types[c.kind], nullable=True,
                       metadata={"description": c.description, "kind": c.kind}) for c in columns]
    return pa.schema(fields, metadata=metadata)


def parquet_chunks(columns: list[Column], rows: Iterable[dict[str, Any]], *, metadata: dict[str, str],
                   row_group: int = PARQUET_ROW_GROUP) -> Iterator[bytes]:
    """A Parquet file, a row group at a time; its schema types every column and describes it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(columns, metadata)
    readers = [c.typed() for c in columns]
    drain = _Drain()
    iterator = iter(rows)
    with pq.ParquetWriter(drain, schema, compression="zstd") as writer:
        while group := list(islice(iterator, row_group)):
            arrays = [pa.array([read(row) for row in group], type=schema.field(i).type)
                      for i, read in enumerate(readers)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            del group, arrays
            yield drain.take()
    yield drain.take()


def _file_metadata(run: Run, what: str) -> dict[str, str]:
    metadata = {"conveyor.run_id": str(run.pk), "conveyor.export": what, "conveyor.model": run.model,
                "conveyor.prompt_version": run.prompt_version}
    if run.output_schema:
        metadata["conveyor.output_schema"] = json.dumps(run.output_schema, ensure_ascii=False)
    return metadata


def results_export(run: Run, fmt: str) -> Iterator[bytes]:
    """A run's results in one of FORMATS, as chunks of bytes."""
    if fmt == "jsonl":
        return jsonl_chunks(run_results(run_id=run.pk))
    columns = result_columns(run)
    rows = run_result_rows(run_id=run.pk)
    if fmt == "csv":
        return csv_chunks(columns, rows)
    return parquet_chunks(columns, rows, metadata=_file_metadata(run, "results"))


def failures_export(run: Run, fmt: str) -> Iterator[bytes]:
    """A run's dead-letter rows in one of FORMATS, as chunks of bytes."""
    rows = run_failure_rows(run_id=run.pk)
    if fmt == "jsonl":
        return jsonl_chunks(_jsonable(row) for row in rows)
    columns = failure_columns(run)
    if fmt == "csv":
        return csv_chunks(columns, rows)
    return parquet_chunks(columns, rows, metadata=_file_metadata(run, "failures"))


def export_filename(run: Run, fmt: str, *, failures: bool = False) -> str:
    return f"run-{run.pk}{'-failures' if failures else ''}.{fmt}"
