"""The one filter language (JSON tree + text form) and its SQL and in-memory evaluators.

See docs/filters.md for paths, operators, the text grammar and the null/mismatch rules.
"""

from apps.segments.filtering.errors import FilterError
from apps.segments.filtering.membership import set_segment_membership_resolver
from apps.segments.filtering.memory import evaluate
from apps.segments.filtering.privacy import filter_redacted, filter_references_private
from apps.segments.filtering.sql import events_matching, profiles_matching
from apps.segments.filtering.text import parse_text, to_text
from apps.segments.filtering.tree import Filter, References, parse_filter

__all__ = [
    "Filter",
    "FilterError",
    "References",
    "evaluate",
    "events_matching",
    "filter_redacted",
    "filter_references_private",
    "parse_filter",
    "parse_text",
    "profiles_matching",
    "set_segment_membership_resolver",
    "to_text",
]
