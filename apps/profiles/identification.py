"""Identification points: identifiers (email, phone, ...) found on events that tie profiles
together. Configured in the admin; applied during processing."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

from apps.events.incoming import ProcessableEvent
from apps.profiles.models import IdentificationPoint, IdentityKind, Profile
from apps.profiles.services import identity as identity_services

_SPACES = re.compile(r"\s+")
_PHONE_JUNK = re.compile(r"[^\d+]")


def normalize(kind: str, value: Any) -> str:
    """The canonical form of an identifier, or "" when there is none."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return ""
    if kind == IdentificationPoint.Kind.EMAIL:
        value = _SPACES.sub("", value).lower()
        return value if "@" in value.strip("@") else ""
    if kind == IdentificationPoint.Kind.PHONE:
        value = _PHONE_JUNK.sub("", value.strip())
        if value.startswith("00"):
            value = "+" + value[2:]
        digits = value.lstrip("+")
        return ("+" if value.startswith("+") else "") + digits if len(digits) >= 6 else ""
    return value.strip()


def identifier_for(point: IdentificationPoint, value: Any) -> str:
    """The distinct_id an identifier is stored under: "email:ann@example.com", or hashed."""
    normalized = normalize(point.kind, value)
    if not normalized:
        return ""
    if point.store_hashed:
        normalized = "sha256:" + hashlib.sha256(normalized.encode()).hexdigest()
    return f"{point.kind}:{normalized}"[:200]


def value_at(event: Any, path: str) -> Any:
    """Read "properties.email", "context.traits.email" or "traits.email" (= the traits, public
    or private, an identify event sets) from an event."""
    root, _, rest = path.partition(".")
    if root == "properties":
        current: Any = event.properties
    elif root == "context":
        current = event.context
    elif root == "traits":
        props = event.properties if isinstance(event.properties, dict) else {}
        current = {}
        for key in ("$set_once", "$set_private", "$set"):
            if isinstance(props.get(key), dict):
                current.update(props[key])
    else:
        return None
    for part in rest.split(".") if rest else []:
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def _kind_of(point: IdentificationPoint) -> str:
    kinds: dict[str, str] = {
        IdentificationPoint.Kind.EMAIL: IdentityKind.EMAIL,
        IdentificationPoint.Kind.PHONE: IdentityKind.PHONE,
    }
    return kinds.get(point.kind, IdentityKind.CUSTOM)


def points_enabled() -> list[IdentificationPoint]:
    return list(IdentificationPoint.objects.filter(enabled=True))


def _matches(
    events: Sequence[ProcessableEvent], points: Sequence[IdentificationPoint]
) -> Iterator[tuple[Any, IdentificationPoint, str]]:
    for event in events:
        for point in points:
            if point.source_id and str(point.source_id) != str(event.source_id):
                continue
            if point.event_name and point.event_name != event.event_name:
                continue
            identifier = identifier_for(point, value_at(event, point.field))
            if identifier:
                yield event, point, identifier


def identifiers_of(
    events: Sequence[ProcessableEvent], points: Sequence[IdentificationPoint]
) -> set[str]:
    """The identifiers the points find on these events (processing locks them)."""
    return {identifier for _, _, identifier in _matches(events, points)}


def identification_points_apply(
    *,
    events: Sequence[ProcessableEvent],
    profiles: dict[str, Profile],
    points: Sequence[IdentificationPoint],
) -> None:
    for event, point, identifier in _matches(events, points):
        identity_services.profile_identify_by(
            profile=profiles[event.distinct_id],
            identifier=identifier,
            kind=_kind_of(point),
            triggered_by=f"point {point.name!r}, event {event.message_id}",
        )
