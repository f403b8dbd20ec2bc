"""Tracardi-style collection: POST /track with {source: {id}, session, profile, context,
properties, events: [{type, properties, context?, options?}]}. The source id is the key; the
answer gives the client the profile and session ids to keep."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apps.events.incoming import (
    MAX_SESSION_ID,
    Rejection,
    clean_distinct_id,
    clean_object,
    clean_profile_flag,
    clean_string,
    json_type,
)
from apps.events.wire.base import Envelope, ParsedBatch
from apps.events.wire.native import parse_event
from apps.sources import selectors as source_selectors
from apps.sources.models import EventSource
from cdp.errors import DomainError


@dataclass(slots=True)
class TracardiBatch:
    batch: ParsedBatch
    profile_id: str
    session_id: str


def _id_of(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DomainError(f"must be an object with an id, not {json_type(value)}", field=field)
    return value.get("id")


def event_time(value: Any) -> Any:
    """When the event happened, as the tracker saw it: Tracardi's time.create (its tracker sets
    it), else time.insert when that is the only one; a bare time string is read too. Bounded
    like any timestamp (not in the future, not before 2000) by the native parser."""
    if isinstance(value, dict):
        created = value.get("create")
        return created if created not in (None, "") else value.get("insert")
    return value if isinstance(value, str) else None


def _unauthorized(message: str) -> DomainError:
    return DomainError(message, field="source.id", code="unauthorized", status_code=401)


def source_id(payload: Any) -> str:
    """The source id of {"source": {"id": ...}}, normalized; 401 when missing or malformed."""
    value = payload.get("source") if isinstance(payload, dict) else None
    value = value.get("id") if isinstance(value, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise _unauthorized("source.id is required: the id of an event source")
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise _unauthorized("Unknown source") from None


def source_from_body(payload: Any) -> EventSource:
    """The source named by {"source": {"id": ...}}: its id acts as the key."""
    source = source_selectors.source_get_for_id(source_id(payload))
    if source is None:
        raise _unauthorized("Unknown source")
    if not source.enabled:
        raise DomainError(
            f"The source {source.name!r} is disabled", code="source_disabled", status_code=401
        )
    return source


def parse(
    payload: Any,
    envelope: Envelope,
    *,
    max_events: int,
    person_of_session: Callable[[str], str | None] = lambda key: None,
) -> TracardiBatch:
    """The request's events. Without a profile id, the person of the session sent (when it
    exists) continues; else a new profile id is made, for the client to keep."""
    if not isinstance(payload, dict):
        raise DomainError("The body must be a JSON object", code="invalid_body")
    try:
        session_id = _id_of(payload.get("session"), "session")
        given_session = session_id is not None
        session_id = (
            clean_string(
                session_id,
                "session.id",
                max_length=MAX_SESSION_ID,
                required=True,
                allow_number=True,
            )
            if given_session
            else uuid.uuid4().hex
        )
        profile_id = _id_of(payload.get("profile"), "profile")
        if profile_id is not None:
            profile_id = clean_distinct_id(profile_id, "profile.id")
        else:
            profile_id = (given_session and person_of_session(session_id)) or uuid.uuid4().hex
        context = clean_object(payload.get("context"), "context")
        options = clean_object(payload.get("options"), "options")
        request_profile = clean_profile_flag(options.get("profile"), "options.profile")
        shared_properties = clean_object(payload.get("properties"), "properties")
    except Rejection as exc:
        raise DomainError(exc.error, field=exc.field) from None
    events = payload.get("events")
    if not isinstance(events, list) or not events:
        raise DomainError("must be a non-empty array of events", field="events")
    if len(events) > max_events:
        raise DomainError(
            f"has {len(events)} events; the limit is {max_events}",
            field="events",
            code="batch_too_large",
            status_code=413,
        )
    result = ParsedBatch()
    for index, event in enumerate(events):
        try:
            if not isinstance(event, dict):
                raise Rejection(None, f"an event must be an object, not {json_type(event)}")
            properties = clean_object(event.get("properties"), "properties")
            own = clean_profile_flag(
                clean_object(event.get("options"), "options").get("profile"), "options.profile"
            )
            raw = {
                # Tracardi's options.profile = false (on the request or the event): personless.
                "profile": request_profile if own is None else own,
                "event_name": event.get("type"),
                "distinct_id": profile_id,
                "session_id": session_id,
                "category": "tracardi",
                "properties": {**shared_properties, **properties},
                "context": {**context, **clean_object(event.get("context"), "context")},
                "timestamp": event_time(event.get("time")),
                "message_id": event.get("id"),
            }
            result.events.append(parse_event(raw, index, envelope, result, strip_reserved=False))
        except Rejection as exc:
            if exc.field == "event_name":
                exc.field = "type"
            elif exc.field == "timestamp":
                exc.field = "time.create"
            result.reject(index, exc)
    return TracardiBatch(batch=result, profile_id=profile_id, session_id=session_id)
