"""Writes on events: ingest a parsed batch, process events, re-dispatch the outbox."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.events.incoming import IncomingEvent, serialize_object
from apps.events.models import SESSION_ENTRY_FIELDS, Event, Session
from apps.events.sessions import SessionAssignment, lock_keys, sessions_assign
from apps.events.storage import events_insert, events_mark_processed, events_store
from apps.events.wire.base import ParsedBatch
from apps.profiles import identification
from apps.profiles import services as profile_services
from apps.segments import services as segment_services
from apps.sources.models import EventSource
from apps.workflows import services as workflow_services
from cdp.errors import DomainError

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class IngestResult:
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]]
    warnings: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "warnings": self.warnings,
        }


def events_ingest(*, source: EventSource, batch: ParsedBatch) -> IngestResult:
    """Store the batch's valid events (one statement) and queue their processing after commit.

    Returns once the events are committed: a 2xx built from this result means durable.
    Ephemeral sources store nothing: their events go straight to processing."""
    unique: dict[str, IncomingEvent] = {}
    for event in batch.events:
        unique.setdefault(event.message_id, event)
    if source.ephemeral:
        _send_ephemeral(list(unique.values()))
        accepted = len(unique)
    else:
        # Committed when events_store returns (unless the caller holds a transaction, whose
        # commit then queues the processing).
        ids = events_store(list(unique.values()))
        events_dispatch(ids, deferred=True)
        accepted = len(ids)
    return IngestResult(
        accepted=accepted,
        duplicates=len(batch.events) - accepted,
        rejected=batch.rejected,
        warnings=[w.as_dict() for w in batch.warnings],
    )


@dataclass(slots=True)
class Emission:
    """One event the platform emits itself (see events_emit)."""

    distinct_id: str
    event_name: str
    properties: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    category: str = "internal"
    message_id: str | None = None
    timestamp: datetime | None = None


def events_emit(
    *,
    distinct_id: str,
    event_name: str,
    properties: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    source: EventSource | None = None,
    category: str = "internal",
    message_id: str | None = None,
    timestamp: datetime | None = None,
) -> int | None:
    """Emit an event from inside the platform (segment_entered, a workflow's emit_event).

    It goes through the normal pipeline: stored (in the internal source unless one is given),
    then processed after the current transaction commits, so rules can route it. A given
    message_id makes the emission idempotent. Returns the new event's id, or None when that
    message_id was already stored."""
    emission = Emission(
        distinct_id=distinct_id,
        event_name=event_name,
        properties=properties,
        context=context,
        category=category,
        message_id=message_id,
        timestamp=timestamp,
    )
    ids = events_emit_many(emissions=[emission], source=source)
    return ids[0] if ids else None


def events_emit_many(
    *, emissions: Sequence[Emission], source: EventSource | None = None, chunk_size: int = 1000
) -> list[int]:
    """Emit many events (a segment recompute's entries and exits) in bulk statements of
    `chunk_size`, as events_emit does one. Returns the ids of the events that were new."""
    from apps.sources.services import source_internal

    if not emissions:
        return []
    if source is None:
        source = source_internal()
    now = timezone.now()
    ids: list[int] = []
    with transaction.atomic():
        for start in range(0, len(emissions), chunk_size):
            batch = [
                _emitted(e, str(source.pk), now) for e in emissions[start : start + chunk_size]
            ]
            ids.extend(events_insert(batch))
        events_dispatch(ids)
    return ids


def _emitted(emission: Emission, source_id: str, now: datetime) -> IncomingEvent:
    properties, properties_json, _ = serialize_object(emission.properties or {}, "properties")
    context, context_json, _ = serialize_object(emission.context or {}, "context")
    return IncomingEvent(
        source_id=source_id,
        message_id=emission.message_id or str(uuid.uuid4()),
        event_name=emission.event_name,
        distinct_id=emission.distinct_id,
        timestamp=emission.timestamp or now,
        received_at=now,
        category=emission.category,
        properties=properties,
        context=context,
        properties_json=properties_json,
        context_json=context_json,
    )


# --- dispatch -----------------------------------------------------------------------------------


def _chunks(ids: Sequence[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def _send_process(event_ids: Sequence[int]) -> bool:
    """Queue processing of the events. A broker failure is logged, not raised: the events are
    committed and the periodic redispatch will queue them again."""
    from apps.events.tasks import process_events

    try:
        for chunk in _chunks(event_ids, settings.CDP_PROCESS_BATCH_SIZE):
            process_events.delay(chunk)
    except Exception as exc:  # kombu/redis raise many kinds; all mean "not queued"
        logger.warning(
            "Could not queue processing of %d events (%s); the redispatcher will retry",
            len(event_ids),
            exc,
        )
        return False
    return True


def _dispatch_in_background() -> bool:
    """Whether committed ids go to this process's background dispatcher (apps.events.dispatch)
    rather than being published by the committing thread. Never when tasks run in-process
    (embedded default, tests): they run right after the commit, as before."""
    from cdp.celery import app as celery_app

    return settings.CDP_DISPATCH_MODE == "background" and not celery_app.conf.task_always_eager


def _hand_to_dispatcher(event_ids: list[int]) -> None:
    from apps.events.dispatch import dispatcher

    dispatcher().submit(event_ids)


def events_dispatch(event_ids: Sequence[int], *, deferred: bool = False) -> None:
    """Queue processing of stored events once the current transaction commits.

    deferred (the tracking request path): in CDP_DISPATCH_MODE "background" the ids go to this
    process's dispatcher thread, which publishes the ids of many requests as one task a few
    milliseconds later; the request doesn't wait for the broker. The outbox redispatch covers
    a process that dies before it publishes."""
    if not event_ids:
        return
    if deferred and _dispatch_in_background():
        transaction.on_commit(partial(_hand_to_dispatcher, list(event_ids)))
    else:
        transaction.on_commit(partial(_send_process, list(event_ids)))


def _send_ephemeral(events: list[IncomingEvent]) -> None:
    from apps.events.tasks import process_ephemeral_events

    if not events:
        return
    try:
        process_ephemeral_events.delay([e.as_task_payload() for e in events])
    except Exception as exc:  # nothing is stored for ephemeral sources: the client must retry
        logger.warning("Could not queue %d ephemeral events: %s", len(events), exc)
        raise DomainError(
            "Processing is unavailable and this source stores nothing: retry later",
            code="processing_unavailable",
            status_code=503,
            headers={"Retry-After": "5"},
        ) from exc


def events_redispatch_unprocessed(
    *, older_than: timedelta | None = None, limit: int = 100_000
) -> int:
    """Queue again events left unprocessed (broker down, worker killed). Returns how many."""
    if older_than is None:
        older_than = timedelta(seconds=settings.CDP_REDISPATCH_AFTER_SECONDS)
    cutoff = timezone.now() - older_than
    ids = list(
        Event.objects.filter(processed_at__isnull=True, received_at__lte=cutoff)
        .order_by("received_at")
        .values_list("id", flat=True)[:limit]
    )
    if ids and _send_process(ids):
        logger.info("Re-dispatched %d unprocessed events", len(ids))
        return len(ids)
    return 0


# --- processing ---------------------------------------------------------------------------------


def _lock_name_to_key(name: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


def _hold_locks(names: Iterable[str]) -> None:
    """Serialize processing per person (and per client session) until the transaction ends.

    PostgreSQL: transaction-level advisory locks, taken in one sorted order so two workers can't
    deadlock. SQLite lets one writer in at a time, which already serializes processing."""
    if connection.vendor != "postgresql":
        return
    keys = sorted({_lock_name_to_key(name) for name in names})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", [keys])


def person_locks_hold(*, distinct_ids: Iterable[str]) -> None:
    """Hold, until the current transaction ends, the locks processing holds for these people
    (their identity locks, named as profile_lock_names names them): a change made outside
    processing (a workflow run's merge_by or people operations) then serialises with the
    processing of the same person. Identifiers ("email:ann@example.com") lock the same way."""
    if not connection.in_atomic_block:
        # In autocommit a transaction-level lock would be released as soon as it is taken.
        raise RuntimeError("person_locks_hold must be called inside a transaction")
    names = profile_services.identity_lock_names(distinct_ids)
    if names:
        _hold_locks(names)


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


def _process(events: Sequence[Any]) -> SessionAssignment:
    """The processing steps, in order, under the per-person locks: sessions, then profiles
    (identity resolution, merges, stats, groups), then segments (real-time membership), then
    routing rules (their runs are recorded, queued, in this transaction and run once it
    commits)."""
    _hold_locks(lock_keys(events) | profile_services.profile_lock_names(events))
    assignment = sessions_assign(events, sources=_sources_of(e.source_id for e in events))
    _save_sessions(assignment)
    profiles = profile_services.profiles_process_events(
        events=events,
        new_session_people=[s.distinct_id for s in assignment.new.values()],
        points=identification.points_enabled(),
    )
    segment_services.segments_process_events(events=events, profiles=profiles)
    workflow_services.rules_dispatch(events=events, profiles=profiles)
    return assignment


def events_process(*, event_ids: Sequence[int]) -> int:
    """Enrich and sessionize stored events, then mark them processed. Idempotent: events
    already processed, or being processed by another worker, are skipped. Returns how many."""
    with transaction.atomic():
        query = Event.objects.filter(id__in=event_ids, processed_at__isnull=True).only(
            "id",
            "source_id",
            "message_id",
            "event_name",
            "distinct_id",
            "timestamp",
            "properties",
            "context",
            "session_key",
        )
        if connection.features.has_select_for_update_skip_locked:
            query = query.select_for_update(skip_locked=True, of=("self",))
        events = list(query.order_by("id"))
        if not events:
            return 0
        assignment = _process(events)
        events_mark_processed(
            [e.id for e in events],
            [assignment.session_of[i].id for i in range(len(events))],
            timezone.now(),
        )
    return len(events)


def events_process_ephemeral(*, events: Sequence[IncomingEvent]) -> int:
    """Process events of an ephemeral source: sessions are kept, the events are not."""
    with transaction.atomic():
        _process(events)
    return len(events)
