"""Pagination of every API list: ``?limit=&offset=``, as DRF's LimitOffsetPagination, with both
numbers capped so that no request can ask the database for more than it can count (PostgreSQL
refuses an OFFSET past a 64-bit integer with an error, not an empty page)."""

from rest_framework.pagination import LimitOffsetPagination

MAX_OFFSET = 2**31  # far past any real list: such a page is simply empty


class Pagination(LimitOffsetPagination):
    max_limit = 1000

    def get_offset(self, request) -> int:
        return min(super().get_offset(request), MAX_OFFSET)
