"""Turning a create request's blocks (inline JSON or an uploaded JSONL file) into BlockSpecs, lazily.

An upload is never whole in memory: Django spools it to disk, `LineReader` reads it back in chunks of
READ_SIZE, `parse_jsonl` validates one line at a time and `run_create` streams the blocks into
PostgreSQL with one COPY. What is held at once is one line plus the set of uids seen (for
duplicates)."""

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from apps.runs.services import BlockSpec, SubmissionError
from apps.runs.services.submission import block_from_object

READ_SIZE = 256 * 1024
# One block's line. Far above any input a model accepts, and what bounds memory per line.
MAX_LINE_BYTES = 4 * 1024 * 1024


class TooManyBlocks(Exception):
    def __init__(self, limit: int):
        super().__init__(f"a run holds at most {limit:,} blocks")
        self.limit = limit


class LineReader:
    """The lines of a binary file, read in chunks; counts them so errors can name the line."""

    def __init__(self, file: IO[bytes], *, max_line_bytes: int = MAX_LINE_BYTES):
        self.file = file
        self.max_line_bytes = max_line_bytes
        self.line = 0

    def __iter__(self) -> Iterator[bytes]:
        pending = b""
        while chunk := self.file.read(READ_SIZE):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield self._count(line)
            if len(pending) > self.max_line_bytes:
                raise SubmissionError(f"is longer than {self.max_line_bytes:,} bytes", line=self.line + 1)
        if pending:
            yield self._count(pending)

    def _count(self, line: bytes) -> bytes:
        self.line += 1
        if len(line) > self.max_line_bytes:
            raise SubmissionError(f"is longer than {self.max_line_bytes:,} bytes", line=self.line)
        return line


class CountedBlocks:
    """Blocks with a ceiling, counted as they go. `count` stays 0 if run_create never read them, which
    is how a caller tells a new run from one an Idempotency-Key found."""

    def __init__(self, specs: Iterable[BlockSpec], *, limit: int):
        self.specs = specs
        self.limit = limit
        self.count = 0

    def __iter__(self) -> Iterator[BlockSpec]:
        for spec in self.specs:
            self.count += 1
            if self.count > self.limit:
                raise TooManyBlocks(self.limit)
            yield spec


def inline_blocks(items: Iterable[dict[str, Any]]) -> Iterator[BlockSpec]:
    """Blocks given inline, already type-checked by the serializer; `line` is the 1-based position,
    so a block without a uid gets the same one it would get as line N of a file."""
    for position, item in enumerate(items, start=1):
        yield block_from_object(item, line=position)


def json_fingerprint(data: Any) -> str:
    """sha256 of an inline create's body (settings and every block), independent of key order and
    spacing: what tells a retried request from another one with the same Idempotency-Key."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def upload_fingerprint(data: Mapping[str, Any]) -> str:
    """sha256 of a multipart create: its form fields and the bytes of its files (read in chunks; the
    file is rewound for parsing)."""
    digest = hashlib.sha256()
    fields: list[list[str]] = []
    for name in sorted(data):
        values = data.getlist(name) if hasattr(data, "getlist") else [data[name]]
        for value in values:
            if hasattr(value, "chunks"):
                digest.update(f"file {name} {value.size}\n".encode())
                for chunk in value.chunks():
                    digest.update(chunk)
                value.seek(0)
            else:
                fields.append([name, str(value)])
    digest.update(json.dumps(fields, ensure_ascii=True).encode())
    return digest.hexdigest()
