"""Reads for the dashboard pages: the home page's figures, the live stream, people search,
a profile's journey. Each is a fixed number of queries, whatever the number of rows."""

from __future__ import annotations

import contextlib
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db.models import (
    Case,
    Count,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    UUIDField,
    Value,
    When,
)
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone

from apps.events.models import Event, Session
from apps.profiles.models import Identity, Profile
from apps.segments.models import Segment, SegmentMembership

HOME_CACHE_SECONDS = 30
ACTIVE_WINDOW_DAYS = 30
# The DAU/WAU/MAU chart reads (day, person) pairs; above this it samples the newest pairs.
MAX_ACTIVITY_PAIRS = 500_000


def activity_events() -> QuerySet[Event]:
    """The people's own events: those the platform emits itself (segment entered/exited,
    workflow emissions, Event.platform) are not activity."""
    return Event.objects.filter(platform=False)


def _person() -> Case:
    """The profile (after merges) of an event's distinct_id; none for a personless event, which
    is nobody's even when its distinct_id has a profile."""
    return Case(
        When(
            personless=False,
            then=Subquery(
                Identity.objects.filter(distinct_id=OuterRef("distinct_id")).values("profile_id")[
                    :1
                ]
            ),
        ),
        default=Value(None),
        output_field=UUIDField(),
    )


@dataclass(slots=True)
class PeriodStat:
    label: str
    days: int
    events: int
    previous_events: int
    people: int
    previous_people: int

    @staticmethod
    def _delta(now: int, before: int) -> float | None:
        return None if before == 0 else round(100.0 * (now - before) / before, 1)

    @property
    def events_delta(self) -> float | None:
        return self._delta(self.events, self.previous_events)

    @property
    def people_delta(self) -> float | None:
        return self._delta(self.people, self.previous_people)


def home_periods(*, now: datetime | None = None) -> list[PeriodStat]:
    """Events and active people today (since midnight UTC), in 7 and 30 days, each against the
    period before it. One query."""
    now = now or timezone.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    day = timedelta(days=1)
    # (label, days, start, start of the previous period, its end): today is compared with
    # yesterday up to the same time of day.
    spans = [
        ("Today", 1, midnight, midnight - day, now - day),
        ("7 days", 7, now - 7 * day, now - 14 * day, now - 7 * day),
        ("30 days", 30, now - 30 * day, now - 60 * day, now - 30 * day),
    ]
    aggregates: dict[str, Any] = {}
    for number, (_label, _days, start, previous_start, previous_end) in enumerate(spans):
        current_q = Q(timestamp__gte=start, timestamp__lte=now)
        previous_q = Q(timestamp__gte=previous_start, timestamp__lt=previous_end)
        aggregates[f"s{number}_e"] = Count("id", filter=current_q)
        aggregates[f"s{number}_pe"] = Count("id", filter=previous_q)
        aggregates[f"s{number}_p"] = Count("person", filter=current_q, distinct=True)
        aggregates[f"s{number}_pp"] = Count("person", filter=previous_q, distinct=True)
    earliest = now - timedelta(days=60)
    row = (
        activity_events()
        .filter(timestamp__gte=earliest, timestamp__lte=now)
        .annotate(person=_person())
        .aggregate(**aggregates)
    )
    return [
        PeriodStat(
            label=label,
            days=days,
            events=row[f"s{number}_e"],
            previous_events=row[f"s{number}_pe"],
            people=row[f"s{number}_p"],
            previous_people=row[f"s{number}_pp"],
        )
        for number, (label, days, *_) in enumerate(spans)
    ]


def active_users_series(*, days: int = 30, now: datetime | None = None) -> dict[str, Any]:
    """Daily, weekly and monthly active people for each of the last `days` days (a day's WAU
    counts the 7 days ending that day). One query over the (day, person) pairs."""
    now = now or timezone.now()
    key = f"insights:active:{days}:{now:%Y%m%d%H}"
    cached = cache.get(key)
    if cached is not None:
        return dict(cached)
    first_day = now.date() - timedelta(days=days - 1)
    since = datetime.combine(first_day - timedelta(days=29), datetime.min.time(), tzinfo=now.tzinfo)
    pairs = (
        activity_events()
        .filter(timestamp__gte=since, timestamp__lte=now)
        .annotate(day=TruncDate("timestamp"), person=_person())
        .exclude(person=None)
        .values_list("day", "person")
        .distinct()[:MAX_ACTIVITY_PAIRS]
    )
    by_day: dict[date, set[Any]] = defaultdict(set)
    for day, person in pairs:
        by_day[day].add(person)
    labels, dau, wau, mau = [], [], [], []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        labels.append(day.isoformat())
        dau.append(len(by_day.get(day, ())))
        week: set[Any] = set()
        month: set[Any] = set()
        for back in range(30):
            people = by_day.get(day - timedelta(days=back))
            if people:
                month |= people
                if back < 7:
                    week |= people
        wau.append(len(week))
        mau.append(len(month))
    result = {
        "type": "line",
        "x": labels,
        "series": [
            {"name": "Daily active", "data": dau},
            {"name": "Weekly active", "data": wau},
            {"name": "Monthly active", "data": mau},
        ],
        "description": "Active people per day, per 7 days and per 30 days, for the last "
        f"{days} days.",
        "rows": [list(row) for row in zip(labels, dau, wau, mau, strict=True)],
    }
    cache.set(key, result, HOME_CACHE_SECONDS)
    return result


def top_events(
    *, days: int = 7, limit: int = 10, now: datetime | None = None
) -> list[dict[str, Any]]:
    now = now or timezone.now()
    rows = (
        activity_events()
        .filter(timestamp__gte=now - timedelta(days=days), timestamp__lte=now)
        .values("event_name")
        .annotate(count=Count("id"), people=Count("distinct_id", distinct=True))
        .order_by("-count", "event_name")[:limit]
    )
    return [dict(row) for row in rows]


def newest_profiles(*, limit: int = 8) -> list[Profile]:
    return list(
        Profile.objects.filter(merged_into=None)
        .order_by("-first_seen", "-created_at")
        .annotate(identity_count=Count("identities"))[:limit]
    )


def segment_sizes(*, limit: int = 10) -> list[Segment]:
    return list(Segment.objects.order_by("-member_count", "name")[:limit])


def live_events(*, after: int | None = None, limit: int = 30) -> list[Event]:
    """The newest events (or those newer than id `after`), newest first, with the profile each
    belongs to as `profile_id`. Platform events (segment entered...) are left out."""
    events = activity_events().annotate(profile_id=_person())
    if after is not None:
        return list(events.filter(id__gt=after).order_by("-id")[:limit])
    # The first screen in time order (a batch imported late holds older events).
    return list(events.order_by("-timestamp", "-id")[:limit])


# --- people ---------------------------------------------------------------------------------


def people_search(*, query: str, with_private: bool, limit: int = 50) -> list[Profile]:
    """Live profiles whose id, a distinct id, or a trait value (a private one only for users
    allowed to see it) contains `query`; newest activity first."""
    profiles = Profile.objects.filter(merged_into=None)
    query = query.strip()
    if query:
        match = Q(identities__distinct_id__icontains=query)
        with contextlib.suppress(ValueError):
            match |= Q(pk=uuid.UUID(query))
        match |= _trait_match("traits", query)
        if with_private:
            match |= _trait_match("private_traits", query)
        profiles = profiles.filter(match).distinct()
    return list(
        profiles.annotate(identity_count=Count("identities", distinct=True)).order_by(
            "-last_seen", "-created_at"
        )[:limit]
    )


def _trait_match(column: str, query: str) -> Q:
    """A trait given as `key=value` matches that trait exactly (as text); a bare word matches
    any trait whose text contains it."""
    if "=" in query:
        key, _, value = query.partition("=")
        key = key.strip()
        if key.replace("_", "").isalnum():
            return Q(**{f"{column}__{key}": value.strip()}) | Q(
                **{f"{column}__{key}__icontains": value.strip()}
            )
    # Casting a JSON object to text and searching it works on SQLite and PostgreSQL alike.
    return Q(**{f"{column}__isnull": False}) & Q(
        pk__in=Profile.objects.annotate(text=Cast(column, TextField()))
        .filter(text__icontains=query)
        .values("pk")
    )


def profile_sessions(*, distinct_ids: list[str], event_name: str = "", limit: int = 500) -> list:
    """A profile's newest events grouped by session (newest session first), optionally only
    events named `event_name`. Two queries."""
    events = Event.objects.filter(distinct_id__in=distinct_ids)
    if event_name:
        events = events.filter(event_name=event_name)
    rows = list(events.select_related("session").order_by("-timestamp", "-id")[:limit])
    groups: list[dict[str, Any]] = []
    index: dict[Any, dict[str, Any]] = {}
    for event in rows:
        key = event.session_id or f"none-{event.timestamp:%Y%m%d}"
        group = index.get(key)
        if group is None:
            group = {"session": event.session, "day": event.timestamp.date(), "events": []}
            index[key] = group
            groups.append(group)
        group["events"].append(event)
    return groups


def profile_event_names(*, distinct_ids: list[str]) -> list[str]:
    return list(
        Event.objects.filter(distinct_id__in=distinct_ids)
        .values_list("event_name", flat=True)
        .distinct()
        .order_by("event_name")[:200]
    )


def event_names(*, limit: int = 500) -> list[str]:
    """Names of the events tracked, for the pickers (cached briefly)."""
    names = cache.get("insights:event_names")
    if names is None:
        names = list(
            activity_events()
            .values_list("event_name", flat=True)
            .distinct()
            .order_by("event_name")[:limit]
        )
        cache.set("insights:event_names", names, HOME_CACHE_SECONDS)
    return list(names)


def segment_size_series(*, segment: Segment, days: int = 30) -> dict[str, Any]:
    """Members at the end of each of the last `days` days, from the membership history (entries
    and exits per day, summed up). Three queries."""
    now = timezone.now()
    first = now.date() - timedelta(days=days - 1)
    start = datetime.combine(first, datetime.min.time(), tzinfo=now.tzinfo)
    memberships = SegmentMembership.objects.filter(segment=segment)
    base = memberships.filter(entered_at__lt=start).exclude(exited_at__lt=start).count()
    entries = dict(
        memberships.filter(entered_at__gte=start)
        .annotate(day=TruncDate("entered_at"))
        .values_list("day")
        .annotate(n=Count("id", output_field=IntegerField()))
        .values_list("day", "n")
    )
    exits = dict(
        memberships.filter(exited_at__gte=start)
        .annotate(day=TruncDate("exited_at"))
        .values_list("day")
        .annotate(n=Count("id", output_field=IntegerField()))
        .values_list("day", "n")
    )
    labels, sizes, size = [], [], base
    for offset in range(days):
        day = first + timedelta(days=offset)
        size += entries.get(day, 0) - exits.get(day, 0)
        labels.append(day.isoformat())
        sizes.append(size)
    return {
        "type": "area",
        "x": labels,
        "series": [{"name": "Members", "data": sizes}],
        "description": f"Members of {segment.name} at the end of each of the last {days} days.",
        "rows": [[label, size] for label, size in zip(labels, sizes, strict=True)],
    }


def segment_history(*, segment: Segment, limit: int = 50) -> list[SegmentMembership]:
    return list(
        SegmentMembership.objects.filter(segment=segment)
        .select_related("profile")
        .order_by("-entered_at", "-id")[:limit]
    )


def session_count(*, distinct_ids: list[str]) -> int:
    return Session.objects.filter(distinct_id__in=distinct_ids).count()
