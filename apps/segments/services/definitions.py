"""Segment definitions: filters parsed and checked, create, update, delete."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction

from apps.segments import selectors
from apps.segments.filtering import (
    Filter,
    FilterError,
    parse_filter,
    parse_text,
)
from apps.segments.models import ScoreDefinition, Segment, SegmentKind
from cdp.errors import DomainError
from cdp.tasks import enqueue_on_commit

logger = logging.getLogger(__name__)


# The segments tasks, queued by name (apps.segments.tasks imports these services).
RECOMPUTE_SEGMENT_TASK = "apps.segments.tasks.recompute_segment"


UNSET: Any = object()


def segment_filter_parse(
    *, filter: Any = None, filter_text: str | None = None, key: str | None = None
) -> dict[str, Any]:
    """The validated tree of a filter given as JSON or in the text form (not both). Errors
    name the input and the leaf at fault. `key`: the segment it is for, which its
    `in_segment` leaves must not lead back to."""
    if filter is not None and filter_text is not None:
        raise DomainError("Send the filter as JSON or as text, not both", field="filter_text")
    name = "filter_text" if filter_text is not None else "filter"
    try:
        tree = parse_text(filter_text) if filter_text is not None else filter
        if tree is None:
            raise DomainError("A dynamic segment needs a filter", field="filter")
        parsed = parse_filter(tree, scope="profile")
    except FilterError as exc:
        leaf = f"{name}.{exc.leaf}" if exc.leaf else name
        raise DomainError(exc.message, field=leaf, code=exc.code) from None
    _check_segment_references(parsed, key=key, field=name)
    return parsed.tree


def _check_segment_references(parsed: Filter, *, key: str | None, field: str) -> None:
    """`in_segment` leaves name existing segments, and never lead back to this one; `scores.`
    paths name existing scores."""
    names = set(parsed.references.scores)
    if names:
        known_scores = set(
            ScoreDefinition.objects.filter(name__in=names).values_list("name", flat=True)
        )
        unknown = sorted(names - known_scores)
        if unknown:
            raise DomainError(f"scores.{unknown[0]}: no score named {unknown[0]!r}", field=field)
    keys = set(parsed.references.segments)
    if not keys:
        return
    known = {s.key: s for s in Segment.objects.filter(key__in=keys)}
    missing = sorted(keys - known.keys())
    if missing:
        raise DomainError(f"in_segment: no segment with key {missing[0]!r}", field=field)
    if key is None:
        return
    # Walk what the referenced segments reference in turn: a cycle would never settle.
    seen: set[str] = set()
    todo = list(keys)
    while todo:
        current = todo.pop()
        if current == key:
            raise DomainError(f"in_segment: segment {key!r} would depend on itself", field=field)
        if current in seen:
            continue
        seen.add(current)
        segment = Segment.objects.filter(key=current).first()
        if segment is not None and segment.kind == SegmentKind.DYNAMIC and segment.filter:
            todo.extend(_parsed(segment).references.segments)


_PARSED: dict[tuple[int, Any], Filter] = {}


def _parsed(segment: Segment) -> Filter:
    """The segment's stored filter, parsed once per version (the tree was validated when it
    was saved)."""
    cache_key = (segment.pk, segment.updated_at)
    parsed = _PARSED.get(cache_key)
    if parsed is None:
        if len(_PARSED) > 1000:
            _PARSED.clear()
        parsed = _PARSED[cache_key] = parse_filter(segment.filter, scope="profile")
    return parsed


def _dynamic_segments(segments: Iterable[Segment] | None = None) -> list[Segment]:
    """The dynamic segments whose stored filter parses, referenced ones first. One that
    doesn't parse any more is logged and left out: it must not stop event processing."""
    usable = []
    for segment in selectors.segment_dynamic_list() if segments is None else segments:
        try:
            _parsed(segment)
        except FilterError:
            logger.exception("Segment %s: its stored filter is not valid any more", segment.key)
            continue
        usable.append(segment)
    return segments_in_dependency_order(usable)


def segment_create(
    *,
    key: str,
    name: str,
    description: str = "",
    kind: str = SegmentKind.DYNAMIC,
    filter: Any = None,
    filter_text: str | None = None,
) -> Segment:
    """A new segment. A dynamic one is computed right after the commit."""
    if kind not in SegmentKind.values:
        raise DomainError(f"must be one of {', '.join(SegmentKind.values)}", field="kind")
    try:
        validate_slug(key)
    except ValidationError:
        raise DomainError("must be letters, digits, - or _", field="key") from None
    if Segment.objects.filter(key=key).exists():
        raise DomainError(f"A segment with key {key!r} exists", field="key", code="duplicate")
    tree = None
    if kind == SegmentKind.DYNAMIC:
        tree = segment_filter_parse(filter=filter, filter_text=filter_text, key=key)
    elif filter is not None or filter_text is not None:
        raise DomainError("A static segment has no filter: its members are listed", field="filter")
    try:
        with transaction.atomic():
            segment = Segment.objects.create(
                key=key, name=name, description=description, kind=kind, filter=tree
            )
            if kind == SegmentKind.DYNAMIC:
                segment_recompute_later(segment=segment)
    except IntegrityError:  # created meanwhile by another request
        raise DomainError(
            f"A segment with key {key!r} exists", field="key", code="duplicate"
        ) from None
    return segment


def segment_update(
    *,
    segment: Segment,
    name: str = UNSET,
    description: str = UNSET,
    kind: str = UNSET,
    filter: Any = UNSET,
    filter_text: str | None = UNSET,
) -> Segment:
    """Change a segment. A new filter (or a static segment made dynamic) is recomputed after
    the commit; a dynamic segment made static keeps its current members as its list."""
    fields: list[str] = []
    if name is not UNSET:
        segment.name = name
        fields.append("name")
    if description is not UNSET:
        segment.description = description
        fields.append("description")
    if kind is not UNSET and kind != segment.kind:
        if kind not in SegmentKind.values:
            raise DomainError(f"must be one of {', '.join(SegmentKind.values)}", field="kind")
        segment.kind = kind
        fields.append("kind")
    given = {
        name: value
        for name, value in (("filter", filter), ("filter_text", filter_text))
        if value is not UNSET
    }
    if segment.kind == SegmentKind.STATIC:
        if any(v is not None for v in given.values()):
            raise DomainError(
                "A static segment has no filter: its members are listed", field="filter"
            )
        if segment.filter is not None:
            segment.filter = None
            fields.append("filter")
    elif given or segment.filter is None:
        tree = segment_filter_parse(
            filter=given.get("filter"), filter_text=given.get("filter_text"), key=segment.key
        )
        if tree != segment.filter:
            segment.filter = tree
            fields.append("filter")
    if not fields:
        return segment
    with transaction.atomic():
        segment.save(update_fields=[*fields, "updated_at"])
        if segment.kind == SegmentKind.DYNAMIC and "filter" in fields:
            segment_recompute_later(segment=segment)
    return segment


def segment_delete(*, segment: Segment) -> None:
    """Delete a segment and its membership history; refused while another segment's filter
    uses it."""
    users = [
        other.key
        for other in selectors.segment_dynamic_list().exclude(pk=segment.pk)
        if segment.key in _parsed(other).references.segments
    ]
    if users:
        raise DomainError(
            f"Segment {segment.key!r} is used by the filter of {', '.join(sorted(users))}",
            code="in_use",
            status_code=409,
        )
    segment.delete()


def segments_in_dependency_order(segments: Iterable[Segment]) -> list[Segment]:
    """Segments named by `in_segment` leaves come before the segments that name them."""
    pending = {s.key: s for s in segments}
    ordered: list[Segment] = []
    placed: set[str] = set()
    while pending:
        ready = [
            s
            for s in pending.values()
            if not (set(_parsed(s).references.segments) & (pending.keys() - {s.key}))
        ] or list(pending.values())  # a cycle (refused when saved): any order ends it
        for segment in sorted(ready, key=lambda s: s.key):
            ordered.append(segment)
            placed.add(segment.key)
            pending.pop(segment.key)
    return ordered


def segment_recompute_later(*, segment: Segment) -> None:
    """Queue a recompute of the segment once the current transaction commits."""
    enqueue_on_commit(
        RECOMPUTE_SEGMENT_TASK, [segment.pk], description=f"the recompute of segment {segment.pk}"
    )
