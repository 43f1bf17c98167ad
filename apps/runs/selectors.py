"""Reads of runs and blocks, shared by the API, the admin and the management commands."""

from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from apps.runs.models import Block, Run

RESULT_FIELDS = (
    "uid", "block_index", "status", "output", "error_code", "error_message", "attempts",
    "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
    "cost_usd", "model", "prompt_version", "pass_number",
)


def runs_visible_to(*, user: Any) -> QuerySet[Run]:
    """Staff see every run; everyone else only their own (another user's run is a 404)."""
    runs = Run.objects.all()
    return runs if user.is_staff else runs.filter(owner=user)


def run_results(*, run_id: Any, chunk_size: int = 2000) -> Iterator[dict[str, Any]]:
    """One dict per block in block_index order, streamed from the database in chunks."""
    rows = (
        Block.objects.filter(run_id=run_id).order_by("block_index").values_list(*RESULT_FIELDS)
        .iterator(chunk_size=chunk_size)
    )
    for row in rows:
        data = dict(zip(RESULT_FIELDS, row, strict=True))
        usage = {k: data.pop(k) for k in (
            "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"
        )}
        usage["cost_usd"] = str(data.pop("cost_usd"))
        data["usage"] = usage
        error = {"code": data.pop("error_code"), "message": data.pop("error_message")}
        data["error"] = error if data["status"] == "failed" else None
        yield data
