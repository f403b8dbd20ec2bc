"""The in_segment hook: the segments app tells the filter language how to read memberships."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apps.segments.filtering.errors import FilterError

# sql_fn(key) -> a QuerySet/subquery of the ids of the segment's current members;
# memory_fn(key, profile) -> bool. Either may return None or raise LookupError for an unknown key.
SqlResolver = Callable[[str], Any]
MemoryResolver = Callable[[str, Any], "bool | None"]

_resolvers: dict[str, Any] = {"sql": None, "memory": None}


def set_segment_membership_resolver(
    sql_fn: SqlResolver | None, memory_fn: MemoryResolver | None
) -> None:
    """Register how in_segment reads stored memberships (None unregisters)."""
    _resolvers["sql"] = sql_fn
    _resolvers["memory"] = memory_fn


def _unknown(key: str, leaf: str) -> FilterError:
    return FilterError(f"unknown segment {key!r}", leaf=leaf)


def segment_member_ids(key: str, *, leaf: str) -> Any:
    """The member-id subquery of a segment, for the SQL evaluator."""
    resolver = _resolvers["sql"]
    if resolver is None:
        raise _unknown(key, leaf)
    try:
        members = resolver(key)
    except LookupError:
        raise _unknown(key, leaf) from None
    if members is None:
        raise _unknown(key, leaf)
    return members


def segment_has_member(key: str, profile: Any, *, leaf: str) -> bool:
    """Whether the profile is a current member, for the in-memory evaluator."""
    resolver = _resolvers["memory"]
    if resolver is None:
        raise _unknown(key, leaf)
    try:
        answer = resolver(key, profile)
    except LookupError:
        raise _unknown(key, leaf) from None
    if answer is None:
        raise _unknown(key, leaf)
    return bool(answer)
