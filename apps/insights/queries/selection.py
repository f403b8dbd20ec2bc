"""The event rows a query reads: one filtered scan of the events table (names, time range,
filters in the filter language), as SQL to wrap, plus the joins that resolve people and read
their traits, groups and segments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.models import Case, Exists, IntegerField, OuterRef, Q, QuerySet, Value, When

from apps.events.models import Event
from apps.insights.queries.sql import queryset_sql
from apps.profiles.models import Identity, Profile
from apps.segments.filtering import Filter, events_matching

ANY_EVENT = "*"


def events_queryset(
    *,
    using: str,
    names: Sequence[str] | None,
    start: datetime | None,
    end: datetime | None,
    filters: Sequence[Filter | None] = (),
    people: bool = False,
) -> QuerySet[Event]:
    """Events of these names in [start, end) matching every filter. None or only "*": any
    activity (platform events left out); "*" beside names: every event (flags decide).
    people: only events of people (personless events left out, for measures of people)."""
    queryset = Event.objects.using(using).all()
    if people:
        queryset = queryset.filter(personless=False)
    if start is not None:
        queryset = queryset.filter(timestamp__gte=start)
    if end is not None:
        queryset = queryset.filter(timestamp__lt=end)
    if names is None or set(names) == {ANY_EVENT}:
        # Events the platform emits itself (segment entered, deliveries) are not activity.
        queryset = queryset.filter(platform=False)
    elif ANY_EVENT in names:
        pass  # "*" beside named events: the step flags tell the rows apart
    else:
        queryset = queryset.filter(event_name__in=sorted(set(names)))
    for filt in filters:
        if filt is not None:
            queryset = events_matching(filt, queryset)
    return queryset


def step_flag(using: str, name: str, filt: Filter | None) -> Case:
    """1 when the row is an event `name` (any activity for "*") matching `filt`, else 0: the
    filter runs as an EXISTS on the row's primary key, so only rows of that name pay for it."""
    condition = Q(event_name=name) if name != ANY_EVENT else Q(platform=False)
    if filt is not None:
        matching = events_matching(
            filt, Event.objects.using(using).filter(pk=OuterRef("pk"))
        ).values("pk")
        condition &= Q(Exists(matching))
    return Case(When(condition, then=Value(1)), default=Value(0), output_field=IntegerField())


def select_sql(queryset: QuerySet[Event], *columns: str) -> tuple[str, list[Any]]:
    return queryset_sql(queryset.values(*columns))


IDENTITY_TABLE = Identity._meta.db_table
PROFILE_TABLE = Profile._meta.db_table


def person_join(alias: str = "e") -> str:
    """Resolve people once: distinct_id -> profile through the identity table (merged ids
    point at the surviving profile). Events whose distinct_id has no identity yet (not
    processed) have no person and are left out of people-based measures."""
    return f"JOIN {IDENTITY_TABLE} pi ON pi.distinct_id = {alias}.distinct_id"
