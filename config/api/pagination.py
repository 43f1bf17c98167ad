"""Pagination styles: numbered pages for short lists, cursors for the long list of a run's blocks.

Both take the page's length as `?page_size=` (DRF's name) or `?limit=` (what most clients try first;
it used to be ignored without a word): the same parameter under two names, both in the schema."""

import contextlib
from typing import Any

from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination, PageNumberPagination, _positive_int
from rest_framework.request import Request

LIMIT_QUERY_PARAM = "limit"


class PageSizeOrLimit:
    """`?page_size=N` or `?limit=N` (page_size wins when both are given), capped at max_page_size."""

    page_size: int
    page_size_query_param: str
    max_page_size: int

    def get_page_size(self, request: Request) -> int:
        params = request.query_params
        name = self.page_size_query_param if self.page_size_query_param in params else LIMIT_QUERY_PARAM
        with contextlib.suppress(KeyError, ValueError):
            return _positive_int(params[name], strict=True, cutoff=self.max_page_size)
        return self.page_size

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)  # type: ignore[misc]
        size = next(p for p in parameters if p["name"] == self.page_size_query_param)
        size["description"] = (f"Results per page: {self.page_size} by default, at most "
                               f"{self.max_page_size}. `{LIMIT_QUERY_PARAM}` is the same.")
        return [*parameters, {**size, "name": LIMIT_QUERY_PARAM,
                              "description": f"The same as `{self.page_size_query_param}`."}]


class PagePagination(PageSizeOrLimit, PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class IndexCursorPagination(PageSizeOrLimit, CursorPagination):
    """Stable pages over a long list ordered by a unique integer column, however it grows."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = "block_index"

    def decode_cursor(self, request: Request) -> Any:
        cursor = super().decode_cursor(request)
        # DRF checks the offset but not the position; a forged one must be a 404, not a crash.
        # (The stubs say int; decoded from the query string it is text.)
        position = None if cursor is None or cursor.position is None else str(cursor.position)
        if position is not None and not (position.isdigit() and len(position) <= 10):
            raise NotFound(self.invalid_cursor_message)
        return cursor
