"""Processing of events, in order: sessions, profiles, segments, routing rules, then the
apps above (destinations) through apps.pipeline.hooks.

The events app stores events and queues their processing by task name; this app, above every
floor it calls, runs the steps under the per-person locks in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from django.db import connection, transaction
from django.utils import timezone

from apps.events.incoming import IncomingEvent, ProcessableEvent
from apps.events.models import SESSION_ENTRY_FIELDS, Event, Session
from apps.events.sessions import SessionAssignment, lock_keys, sessions_assign
from apps.events.storage import events_mark_processed
from apps.pipeline import hooks
from apps.profiles import identification
from apps.profiles import services as profile_services
from apps.profiles.locks import locks_hold
from apps.profiles.models import Profile
from apps.segments import services as segment_services
from apps.sources.models import EventSource
from apps.workflows import services as workflow_services

# The columns processing reads of a stored event.
_EVENT_FIELDS = (
    "id",
    "source_id",
    "message_id",
    "event_name",
    "distinct_id",
    "timestamp",
    "properties",
    "context",
    "session_key",
    "platform",
    "personless",
)


def _sources_of(source_ids: Iterable[Any]) -> dict[str, EventSource]:
    return {str(s.pk): s for s in EventSource.objects.filter(pk__in=set(source_ids))}


def _save_sessions(assignment: SessionAssignment) -> None:
    if assignment.new:
        Session.objects.bulk_create(assignment.new.values())
    if assignment.changed:
        Session.objects.bulk_update(
            assignment.changed.values(),
            ["started_at", "last_event_at", "event_count", *SESSION_ENTRY_FIELDS],
        )


def events_process_batch(events: Sequence[ProcessableEvent]) -> list[Session | None]:
    """The processing steps, in order, under the per-person locks: sessions, then profiles
    (identity resolution, merges, stats, groups), then segments (real-time membership), then
    routing rules (their runs are recorded, queued, in this transaction and run once it
    commits). Call it inside a transaction. Returns each event's session: None for platform
    events, which are not a visit (nor any other activity; see Event.platform).

    Personless events (Event.personless) get sessions and rules, nothing of the profile and
    segment steps: no profile, identity, traits or counters."""
    people = [e for e in events if not e.personless]
    lock_names = lock_keys(events)
    if people:
        lock_names |= profile_services.profile_lock_names(people)
    locks_hold(lock_names)
    activity = [i for i, e in enumerate(events) if not e.platform]
    assignment = sessions_assign(
        [events[i] for i in activity], sources=_sources_of(e.source_id for e in events)
    )
    _save_sessions(assignment)
    sessions: list[Session | None] = [None] * len(events)
    for position, index in enumerate(activity):
        sessions[index] = assignment.session_of[position]
    # Processing only ever holds stored or ephemeral events: the two ProcessableEvent kinds.
    routed = cast("Sequence[Event | IncomingEvent]", events)
    profiles: dict[str, Profile] = {}
    if people:
        profiles = profile_services.profiles_process_events(
            events=people,
            new_session_people=[s.distinct_id for s in assignment.new.values() if not s.personless],
            points=identification.points_enabled(),
        )
        segment_services.segments_process_events(events=people, profiles=profiles)
        workflow_services.rules_dispatch(
            events=[e for e in routed if not e.personless], profiles=profiles
        )
    if len(people) < len(events):
        # A personless event's run has no profile, even when its distinct_id has one.
        workflow_services.rules_dispatch(events=[e for e in routed if e.personless])
    # Last: the apps above (destinations) write their outbox rows in this transaction;
    # personless events come with no profile.
    hooks.events_processed(events=events, profiles=profiles)
    return sessions


def events_process(*, event_ids: Sequence[int]) -> int:
    """Enrich and sessionize stored events, then mark them processed. Idempotent: events
    already processed, or being processed by another worker, are skipped. Returns how many."""
    with transaction.atomic():
        query = Event.objects.filter(id__in=event_ids, processed_at__isnull=True).only(
            *_EVENT_FIELDS
        )
        if connection.features.has_select_for_update_skip_locked:
            query = query.select_for_update(skip_locked=True, of=("self",))
        events = list(query.order_by("id"))
        if not events:
            return 0
        sessions = events_process_batch(events)
        events_mark_processed(
            [e.id for e in events],
            [None if s is None else s.id for s in sessions],
            timezone.now(),
        )
    return len(events)


def events_process_ephemeral(*, events: Sequence[IncomingEvent]) -> int:
    """Process events of an ephemeral source: sessions are kept, the events are not."""
    with transaction.atomic():
        events_process_batch(events)
    return len(events)
