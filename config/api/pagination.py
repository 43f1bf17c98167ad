"""Pagination styles: numbered pages for short lists, cursors for the long list of a run's blocks."""

from typing import Any

from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.request import Request


class PagePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class IndexCursorPagination(CursorPagination):
    """Stable pages over a long list ordered by a unique integer column, however it grows."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = "block_index"

    def decode_cursor(self, request: Request) -> Any:
        cursor = super().decode_cursor(request)
        # DRF checks the offset but not the position; a forged one must be a 404, not a crash.
        if cursor is not None and cursor.position is not None and not (
            cursor.position.isdigit() and len(cursor.position) <= 10
        ):
            raise NotFound(self.invalid_cursor_message)
        return cursor
