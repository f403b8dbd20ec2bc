"""Cursor pagination for the management API: stable under inserts, newest first."""

from rest_framework.pagination import CursorPagination


class NewestFirstCursorPagination(CursorPagination):
    ordering: tuple[str, ...] = ("-id",)
    page_size_query_param = "page_size"
    max_page_size = 1000
