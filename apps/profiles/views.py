"""Identity tracking endpoints: /api/identify, /api/alias (through the event pipeline) and
/api/people, /api/groups, /api/groups/properties (applied at once, answering per key; at most
once per source and `message_id`, a retry answered as a duplicate)."""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpRequest, HttpResponse

from apps.events import services as event_services
from apps.events.hooks import operation_refused
from apps.events.incoming import (
    MAX_MESSAGE_ID,
    Rejection,
    clean_distinct_id,
    clean_string,
    parse_timestamp,
    serialize_object,
)
from apps.events.tracking import check_rate, json_response, tracking_endpoint
from apps.events.wire import native
from apps.events.wire.base import Envelope
from apps.profiles import selectors, services, traits
from apps.profiles.services.receipts import operation_apply_once
from apps.sources.models import EventSource
from cdp.errors import DomainError

_GROUP_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


def _ingest(source: EventSource, batch: Any) -> HttpResponse:
    check_rate(source, len(batch.events))
    return json_response(event_services.events_ingest(source=source, batch=batch).as_dict())


@tracking_endpoint
def identify(
    request: HttpRequest, payload: Any, source: EventSource, envelope: Envelope
) -> HttpResponse:
    return _ingest(source, native.parse_identify(payload, envelope))


@tracking_endpoint
def alias(
    request: HttpRequest, payload: Any, source: EventSource, envelope: Envelope
) -> HttpResponse:
    return _ingest(source, native.parse_alias(payload, envelope))


def _object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise DomainError("The body must be a JSON object", code="invalid_body")
    return payload


def _operations(payload: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    ops = {op: payload[op] for op in allowed if payload.get(op) is not None}
    shape_errors = traits.validate_operations(ops, allowed)
    if shape_errors:
        op, reason = next(iter(shape_errors.items()))
        raise DomainError(reason, field=op)
    for op, value in ops.items():
        if isinstance(value, dict):
            try:
                ops[op], _, _ = serialize_object(value, op)
            except Rejection as exc:
                raise DomainError(exc.error, field=exc.field) from None
    return ops


def _refused(source: EventSource, distinct_id: str) -> HttpResponse | None:
    """200 with a warning, nothing written, when a gate refuses the person (suppressed): as
    a dropped event is answered, so that an SDK does not retry."""
    refused = operation_refused(source=source, distinct_ids=[distinct_id])
    if refused is None:
        return None
    code, message = refused
    return json_response(
        {"profile_id": None, "dropped": True, "warnings": [{"code": code, "warning": message}]}
    )


def _clean(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except Rejection as exc:
        raise DomainError(exc.error, field=exc.field) from None


def _message_id(payload: dict[str, Any]) -> str | None:
    """The operation's dedupe key: `message_id` (as /api/track), or Mixpanel's `$insert_id`.
    None (absent or blank): the operation applies every time it is sent."""
    field = "message_id" if payload.get("message_id") is not None else "$insert_id"
    value = _clean(
        clean_string,
        payload.get(field),
        field,
        max_length=MAX_MESSAGE_ID,
        required=False,
        allow_number=True,
    )
    return value or None


def _profile_id(distinct_id: str) -> str | None:
    profile = selectors.profile_get_for_distinct_id(distinct_id)
    return str(profile.pk) if profile is not None else None


@tracking_endpoint
def people(
    request: HttpRequest, payload: Any, source: EventSource, envelope: Envelope
) -> HttpResponse:
    payload = _object(payload)
    distinct_id = _clean(clean_distinct_id, payload.get("distinct_id"))
    at = _clean(parse_timestamp, payload.get("timestamp"), "timestamp") or envelope.received_at
    delete = payload.get("delete", False)
    if not isinstance(delete, bool):
        raise DomainError("must be true or false", field="delete")
    ops = _operations(payload, traits.OPERATIONS)
    if not ops and not delete:
        raise DomainError(
            f"No operation: send one of {', '.join(traits.OPERATIONS)} or delete",
            code="no_operation",
        )
    if delete:
        ops["delete"] = True
    message_id = _message_id(payload)
    check_rate(source, 1)
    if (refusal := _refused(source, distinct_id)) is not None:
        return refusal
    result, duplicate = operation_apply_once(
        source_id=source.pk,
        message_id=message_id,
        apply=lambda: services.people_apply(distinct_id=distinct_id, ops=ops, at=at),
    )
    if result is None:  # a duplicate: what it made is there, nothing more is done
        return json_response(
            {
                "profile_id": _profile_id(distinct_id),
                "deleted": False,
                "errors": {},
                "duplicates": 1,
            }
        )
    return json_response(
        {
            "profile_id": str(result.profile.pk) if result.profile else None,
            "deleted": result.deleted,
            "errors": result.errors,
            "duplicates": int(duplicate),
        }
    )


def _group_ref(payload: dict[str, Any]) -> tuple[str, str]:
    group_key = _clean(
        clean_string, payload.get("group_key"), "group_key", max_length=100, required=True
    )
    if not _GROUP_KEY.match(group_key):
        raise DomainError(
            "must be lowercase letters, digits, - or _ (e.g. company)", field="group_key"
        )
    group_id = _clean(
        clean_string,
        payload.get("group_id"),
        "group_id",
        max_length=200,
        required=True,
        allow_number=True,
    )
    return group_key, group_id


@tracking_endpoint
def groups(
    request: HttpRequest, payload: Any, source: EventSource, envelope: Envelope
) -> HttpResponse:
    payload = _object(payload)
    distinct_id = _clean(clean_distinct_id, payload.get("distinct_id"))
    action = payload.get("action", "add")
    if action not in ("set", "add", "remove"):
        raise DomainError("must be set, add or remove", field="action")
    group_key, group_id = _group_ref(payload)
    message_id = _message_id(payload)
    check_rate(source, 1)
    if (refusal := _refused(source, distinct_id)) is not None:
        return refusal
    profile, duplicate = operation_apply_once(
        source_id=source.pk,
        message_id=message_id,
        apply=lambda: services.group_membership_set(
            distinct_id=distinct_id, action=action, group_key=group_key, group_id=group_id
        ),
    )
    return json_response(
        {
            "profile_id": str(profile.pk) if profile is not None else _profile_id(distinct_id),
            "group_key": group_key,
            "group_id": group_id,
            "action": action,
            "duplicates": int(duplicate),
        }
    )


@tracking_endpoint
def group_properties(
    request: HttpRequest, payload: Any, source: EventSource, envelope: Envelope
) -> HttpResponse:
    payload = _object(payload)
    group_key, group_id = _group_ref(payload)
    ops = _operations(payload, ("set_once", "set", "unset"))
    if not ops:
        raise DomainError("No operation: send set, set_once or unset", code="no_operation")
    message_id = _message_id(payload)
    check_rate(source, 1)
    result, duplicate = operation_apply_once(
        source_id=source.pk,
        message_id=message_id,
        apply=lambda: services.group_properties_update(
            group_key=group_key, group_id=group_id, ops=ops, at=envelope.received_at
        ),
    )
    if result is None:  # applied before: the group's properties as they are now
        existing = selectors.group_find(group_key=group_key, group_id=group_id)
        properties, errors = (existing.properties if existing else {}), {}
    else:
        properties, errors = result[0].properties, result[1]
    return json_response(
        {
            "group_key": group_key,
            "group_id": group_id,
            "properties": properties,
            "errors": errors,
            "duplicates": int(duplicate),
        }
    )
