"""Reads on events and sessions."""

from typing import Any

from django.db.models import Count, Max, Min, QuerySet

from apps.events.models import Event, Session


def event_list() -> QuerySet[Event]:
    return Event.objects.select_related("session")


def session_list() -> QuerySet[Session]:
    return Session.objects.all()


def event_stats_for(*, distinct_ids: list[str]) -> dict[str, Any]:
    """First/last seen, event and session counts over the activity of these distinct ids
    (events the platform emitted are not activity; personless events and visits are nobody's)."""
    events = Event.objects.filter(distinct_id__in=distinct_ids, platform=False, personless=False)
    stats = events.aggregate(
        first_seen=Min("timestamp"), last_seen=Max("timestamp"), event_count=Count("id")
    )
    stats["session_count"] = Session.objects.filter(
        distinct_id__in=distinct_ids, personless=False
    ).count()
    return stats


def event_timeline(*, distinct_ids: list[str]) -> Any:
    """The events of a person (all their distinct ids), newest first; personless events are
    nobody's, even when sent with one of these ids."""
    return Event.objects.filter(distinct_id__in=distinct_ids, personless=False).select_related(
        "session"
    )


def session_person(*, source_id: Any, key: str) -> str | None:
    """The distinct_id of the session a client keyed `key`, if it exists."""
    return (
        Session.objects.filter(source_id=source_id, key=key)
        .values_list("distinct_id", flat=True)
        .first()
    )


def event_count_since(*, distinct_ids: list[str], event_name: str, since: Any) -> int:
    """How many events named `event_name` these distinct ids sent at or after `since`."""
    return Event.objects.filter(
        distinct_id__in=distinct_ids, event_name=event_name, timestamp__gte=since
    ).count()
