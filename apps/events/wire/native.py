"""The native wire format: POST /api/track with one event or {"batch": [...]}."""

from __future__ import annotations

from typing import Any

from apps.events.incoming import (
    MAX_CATEGORY,
    MAX_EVENT_NAME,
    MAX_MESSAGE_ID,
    MAX_SESSION_ID,
    RESERVED_PROPERTIES,
    IncomingEvent,
    Rejection,
    Warning,
    clean_distinct_id,
    clean_object,
    clean_profile_flag,
    clean_string,
    event_time,
    json_type,
    new_message_id,
    parse_timestamp,
    serialize_object,
)
from apps.events.wire.base import Envelope, ParsedBatch, TooLarge
from cdp.errors import DomainError


def split_batch(payload: Any, *, max_events: int) -> tuple[list[Any], dict[str, Any]]:
    """The list of raw events, and the batch-level fields (sent_at, context) they share."""
    if not isinstance(payload, dict):
        raise DomainError(
            f'The body must be a JSON object (one event or {{"batch": [...]}}), '
            f"not {json_type(payload)}",
            code="invalid_body",
        )
    if "batch" not in payload:
        return [payload], {}
    batch = payload["batch"]
    if not isinstance(batch, list):
        raise DomainError(f"must be an array, not {json_type(batch)}", field="batch")
    if not batch:
        raise DomainError("is empty: send at least one event", field="batch", code="empty_batch")
    if len(batch) > max_events:
        raise DomainError(
            f"has {len(batch)} events; the limit is {max_events} per request: split it",
            field="batch",
            code="batch_too_large",
            status_code=413,
        )
    shared = {"sent_at": payload.get("sent_at"), "context": payload.get("context")}
    return batch, shared


def parse_track(payload: Any, envelope: Envelope, *, max_events: int) -> ParsedBatch:
    raw_events, shared = split_batch(payload, max_events=max_events)
    result = ParsedBatch()
    try:
        batch_sent_at = parse_timestamp(shared.get("sent_at"), "sent_at")
        batch_context = clean_object(shared.get("context"), "context")
    except Rejection as exc:
        raise DomainError(exc.error, field=exc.field) from None
    for index, raw in enumerate(raw_events):
        try:
            result.events.append(
                parse_event(raw, index, envelope, result, batch_sent_at, batch_context)
            )
        except Rejection as exc:
            result.reject(index, exc)
    return result


def parse_event(
    raw: Any,
    index: int,
    envelope: Envelope,
    result: ParsedBatch,
    batch_sent_at: Any = None,
    batch_context: dict[str, Any] | None = None,
    *,
    strip_reserved: bool = True,
) -> IncomingEvent:
    if not isinstance(raw, dict):
        raise Rejection(None, f"an event must be an object, not {json_type(raw)}")
    event_name = clean_string(
        raw.get("event_name", raw.get("event")),
        "event_name",
        max_length=MAX_EVENT_NAME,
        required=True,
    )
    distinct_id = clean_distinct_id(raw.get("distinct_id"))
    category = (
        clean_string(raw.get("category"), "category", max_length=MAX_CATEGORY, required=False)
        or "custom"
    )
    message_id = (
        clean_string(
            raw.get("message_id"),
            "message_id",
            max_length=MAX_MESSAGE_ID,
            required=False,
            allow_number=True,
        )
        or new_message_id()
    )
    session_key = clean_string(
        raw.get("session_id"),
        "session_id",
        max_length=MAX_SESSION_ID,
        required=False,
        allow_number=True,
    )
    with_profile = clean_profile_flag(raw.get("profile"), "profile")
    timestamp = parse_timestamp(raw.get("timestamp"), "timestamp")
    sent_at = parse_timestamp(raw.get("sent_at"), "sent_at") or batch_sent_at
    when, time_warning = event_time(timestamp, sent_at, envelope.received_at, envelope.max_future)
    if time_warning:
        result.warnings.append(Warning(index, "timestamp", time_warning))

    properties = clean_object(raw.get("properties"), "properties")
    reserved = RESERVED_PROPERTIES.intersection(properties) if strip_reserved else ()
    if reserved:
        properties = {k: v for k, v in properties.items() if k not in reserved}
        for name in sorted(reserved):
            result.warnings.append(
                Warning(
                    index,
                    f"properties.{name}",
                    "reserved property name (captured automatically): stripped",
                )
            )
    context = clean_object(raw.get("context"), "context")
    if batch_context:
        context = {**batch_context, **context}
    if envelope.ip and "ip" not in context:
        context["ip"] = envelope.ip
    if envelope.user_agent and "user_agent" not in context:
        context["user_agent"] = envelope.user_agent
    if envelope.gpc:
        context["gpc"] = True

    properties, properties_json, stripped_p = serialize_object(properties, "properties")
    context, context_json, stripped_c = serialize_object(context, "context")
    if stripped_p or stripped_c:
        result.warnings.append(
            Warning(index, "properties" if stripped_p else "context", "NUL characters removed")
        )
    size = len(properties_json) + len(context_json) + len(event_name) + len(distinct_id)
    if size > envelope.max_event_bytes:
        raise TooLarge(
            None, f"the event is {size} bytes; the limit is {envelope.max_event_bytes} per event"
        )
    return IncomingEvent(
        source_id=envelope.source_id,
        message_id=message_id,
        event_name=event_name,
        distinct_id=distinct_id,
        timestamp=when,
        received_at=envelope.received_at,
        category=category,
        properties=properties,
        context=context,
        session_key=session_key,
        properties_json=properties_json,
        context_json=context_json,
        personless=None if with_profile is None else not with_profile,
    )


def _single(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise DomainError(
            f"The body must be a JSON object, not {json_type(payload)}", code="invalid_body"
        )
    return payload


def _parse_special(
    payload: dict[str, Any],
    envelope: Envelope,
    event_name: str,
    category: str,
    properties: dict[str, Any],
) -> ParsedBatch:
    """An identity call becomes an event of the pipeline (stored, processed in order). It
    always acts on a profile, whatever the source's setting."""
    raw = {
        "profile": True,
        "event_name": event_name,
        "category": category,
        "distinct_id": payload.get("distinct_id"),
        "timestamp": payload.get("timestamp"),
        "sent_at": payload.get("sent_at"),
        "message_id": payload.get("message_id"),
        "session_id": payload.get("session_id"),
        "context": payload.get("context"),
        "properties": properties,
    }
    result = ParsedBatch()
    try:
        result.events.append(parse_event(raw, 0, envelope, result))
    except Rejection as exc:
        raise DomainError(exc.error, field=exc.field) from None
    return result


def parse_identify(payload: Any, envelope: Envelope) -> ParsedBatch:
    """POST /api/identify {distinct_id, anonymous_id?, traits?, private_traits?}."""
    payload = _single(payload)
    properties: dict[str, Any] = {}
    try:
        anonymous_id = payload.get("anonymous_id")
        if anonymous_id is not None:
            properties["$anonymous_id"] = clean_distinct_id(anonymous_id, "anonymous_id")
        properties["$set"] = clean_object(payload.get("traits"), "traits")
        properties["$set_private"] = clean_object(payload.get("private_traits"), "private_traits")
    except Rejection as exc:
        raise DomainError(exc.error, field=exc.field) from None
    return _parse_special(payload, envelope, "$identify", "identify", properties)


def parse_alias(payload: Any, envelope: Envelope) -> ParsedBatch:
    """POST /api/alias {distinct_id, alias}."""
    payload = _single(payload)
    try:
        alias = clean_distinct_id(payload.get("alias"), "alias")
    except Rejection as exc:
        raise DomainError(exc.error, field=exc.field) from None
    return _parse_special(payload, envelope, "$create_alias", "identify", {"alias": alias})
