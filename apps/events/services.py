"""Writes on events: ingest a parsed batch, emit events, queue their processing (the outbox)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.events.dispatch import PROCESS_EPHEMERAL_EVENTS, dispatcher, events_publish
from apps.events.groupcommit import group_commit_applies, group_writer
from apps.events.hooks import Dropped, ingest_gates_apply
from apps.events.incoming import IncomingEvent, serialize_object
from apps.events.models import Event
from apps.events.storage import events_insert, events_store
from apps.events.wire.base import ParsedBatch
from apps.sources.models import EventSource
from apps.sources.services import source_internal
from cdp.celery import app as celery_app
from cdp.errors import DomainError
from cdp.tasks import enqueue

logger = logging.getLogger(__name__)

__all__ = [
    "Emission",
    "IngestResult",
    "events_dispatch",
    "events_emit",
    "events_emit_many",
    "events_ingest",
    "events_publish",
    "events_redispatch_unprocessed",
]


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
    # Before the gates, so that they see whether each event has a profile.
    _personless_apply(source, unique.values())
    kept, dropped = ingest_gates_apply(source=source, events=list(unique.values()))
    if source.ephemeral:
        _send_ephemeral(kept)
        accepted = len(kept)
    else:
        # Committed when events_store returns (unless the caller holds a transaction, whose
        # commit then queues the processing).
        if group_commit_applies(kept):
            # Committed by the writer, outside any transaction of this thread: hand the ids
            # on now (on_commit would check a pooled connection out just to learn that).
            ids = group_writer().store(kept)
            events_dispatch(ids, deferred=True, committed=True)
        else:
            ids = events_store(kept)
            events_dispatch(ids, deferred=True)
        accepted = len(ids)
    return IngestResult(
        accepted=accepted,
        # Repeats inside the request, and events already stored; dropped ones are not duplicates.
        duplicates=len(batch.events) - len(unique) + len(kept) - accepted,
        rejected=batch.rejected,
        warnings=[w.as_dict() for w in batch.warnings] + _dropped_warnings(batch, dropped),
    )


def _personless_apply(source: EventSource, events: Iterable[IncomingEvent]) -> None:
    """Events that carry no profile flag of their own follow the source's setting."""
    default = not source.with_profiles
    for event in events:
        if event.personless is None:
            event.personless = default


def _dropped_warnings(batch: ParsedBatch, dropped: list[Dropped]) -> list[dict[str, Any]]:
    """One warning per event a gate dropped, by its index in the request (as rejections are)."""
    if not dropped:
        return []
    index_of = {id(event): index for index, event in enumerate(batch.events)}
    return [
        {
            "index": index_of.get(id(d.event)),
            "field": None,
            "warning": d.message,
            "code": d.reason,
            "dropped": True,
        }
        for d in dropped
    ]


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

    Every emitted event is a platform event (Event.platform): not the person's activity, so
    it moves no last_seen, counter or session and `performed any` leaves it out; rules route
    on it and filters naming it match it. It goes through the normal pipeline: stored (in the
    internal source unless one is given), then processed after the current transaction
    commits, so rules can route it. A given message_id makes the emission idempotent. Returns
    the new event's id, or None when that message_id was already stored."""
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
            batch, _ = ingest_gates_apply(source=source, events=batch)
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
        platform=True,
        personless=False,
    )


# --- dispatch -----------------------------------------------------------------------------------


def _dispatch_in_background() -> bool:
    """Whether committed ids go to this process's background dispatcher (apps.events.dispatch)
    rather than being published by the committing thread. Never when tasks run in-process
    (embedded default, tests): they run right after the commit, as before."""
    return settings.CDP_DISPATCH_MODE == "background" and not celery_app.conf.task_always_eager


def _hand_to_dispatcher(event_ids: list[int]) -> None:
    dispatcher().submit(event_ids)


def events_dispatch(
    event_ids: Sequence[int], *, deferred: bool = False, committed: bool = False
) -> None:
    """Queue processing of stored events once the current transaction commits.

    deferred (the tracking request path): in CDP_DISPATCH_MODE "background" the ids go to this
    process's dispatcher thread, which publishes the ids of many requests as one task a few
    milliseconds later; the request doesn't wait for the broker. The outbox redispatch covers
    a process that dies before it publishes. committed: the ids were committed outside any
    transaction of the caller, so they are queued at once."""
    if not event_ids:
        return
    queue: Callable[[], object]
    if deferred and _dispatch_in_background():
        queue = partial(_hand_to_dispatcher, list(event_ids))
    else:
        queue = partial(events_publish, list(event_ids))
    if committed:
        queue()
    else:
        transaction.on_commit(queue)


def _send_ephemeral(events: list[IncomingEvent]) -> None:
    """Queue an ephemeral batch now. Nothing is stored for ephemeral sources: when the broker
    is down the client must retry (503)."""
    if not events:
        return
    if not enqueue(
        PROCESS_EPHEMERAL_EVENTS,
        [[e.as_task_payload() for e in events]],
        description=f"{len(events)} ephemeral events",
    ):
        raise DomainError(
            "Processing is unavailable and this source stores nothing: retry later",
            code="processing_unavailable",
            status_code=503,
            headers={"Retry-After": "5"},
        )


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
    if ids and events_publish(ids):
        logger.info("Re-dispatched %d unprocessed events", len(ids))
        return len(ids)
    return 0
