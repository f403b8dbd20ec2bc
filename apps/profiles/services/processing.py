"""The profile step of event processing: identity events, identification points, stats, groups."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from apps.events.incoming import ProcessableEvent
from apps.profiles import identification
from apps.profiles.models import (
    IdentificationPoint,
    Profile,
)
from apps.profiles.selectors import profile_follow
from apps.profiles.services.groups import (
    _memberships_add,
    group_get_or_create,
    group_membership_set,
    group_properties_update,
)
from apps.profiles.services.identity import (
    identities_resolve,
    identity_lock_names,
    profile_alias,
    profile_identify,
)
from apps.profiles.services.people import people_apply
from apps.profiles.services.storage import (
    _lock_profiles,
    _max_time,
    _min_time,
    _profile_stats_write,
)

IDENTIFY_EVENT = "$identify"


ALIAS_EVENT = "$create_alias"


SET_EVENT = "$set"


GROUP_EVENT = "$group"


def _props(event: ProcessableEvent) -> dict[str, Any]:
    return event.properties if isinstance(event.properties, dict) else {}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _on_identify(event: ProcessableEvent) -> None:
    props = _props(event)
    anonymous_id = props.get("$anonymous_id")
    profile_identify(
        distinct_id=event.distinct_id,
        anonymous_id=anonymous_id if isinstance(anonymous_id, str) else "",
        traits=_dict(props.get("$set")),
        private_traits=_dict(props.get("$set_private")),
        at=event.timestamp,
        triggered_by=f"event {event.message_id}",
    )


def _on_alias(event: ProcessableEvent) -> None:
    alias = _props(event).get("alias")
    if isinstance(alias, str) and alias:
        profile_alias(
            distinct_id=event.distinct_id, alias=alias, triggered_by=f"event {event.message_id}"
        )


def _on_set(event: ProcessableEvent) -> None:
    """Traits of a person who is not identified (Segment identify without userId)."""
    props = _props(event)
    ops = {"set": _dict(props.get("$set")), "set_once": _dict(props.get("$set_once"))}
    people_apply(
        distinct_id=event.distinct_id, ops=ops, at=event.timestamp, reevaluate_segments=False
    )


def _on_group(event: ProcessableEvent) -> None:
    """Join a group and set its properties (Segment group calls)."""
    props = _props(event)
    key = re.sub(r"[^a-z0-9_-]", "", str(props.get("group_key") or "").lower())[:100]
    group_id = str(props.get("group_id") or "")[:200]
    if not key or not group_id:
        return
    group_membership_set(
        distinct_id=event.distinct_id,
        action="add",
        group_key=key,
        group_id=group_id,
        reevaluate_segments=False,
    )
    traits = _dict(props.get("$group_set"))
    if traits:
        group_properties_update(
            group_key=key, group_id=group_id, ops={"set": traits}, at=event.timestamp
        )


# Events that change identity or traits rather than record behaviour, by name.
IDENTITY_EVENT_HANDLERS: dict[str, Callable[[ProcessableEvent], None]] = {
    IDENTIFY_EVENT: _on_identify,
    ALIAS_EVENT: _on_alias,
    SET_EVENT: _on_set,
    GROUP_EVENT: _on_group,
}


# The events whose handling may change traits, identities or groups (segments re-read those).
IDENTITY_EVENTS = frozenset(IDENTITY_EVENT_HANDLERS)


@dataclass(slots=True)
class _Stats:
    first_seen: datetime
    last_seen: datetime
    events: int = 0
    sessions: int = 0


def profile_lock_names(events: Sequence[ProcessableEvent]) -> set[str]:
    """Lock names for the identity work of a batch: each distinct_id it touches, and each
    identifier its identification points will look up (two people's events carrying the same
    email must not both create its identity)."""
    ids = set(identification.identifiers_of(events, identification.points_enabled()))
    for event in events:
        ids.add(event.distinct_id)
        props = event.properties if isinstance(event.properties, dict) else {}
        for key in ("$anonymous_id", "alias"):
            if isinstance(props.get(key), str):
                ids.add(props[key])
    return identity_lock_names(ids)


def profiles_process_events(
    *,
    events: Sequence[ProcessableEvent],
    new_session_people: Iterable[str],
    points: Sequence[IdentificationPoint] = (),
) -> dict[str, Profile]:
    """Resolve each event's person (creating profiles for new ids), apply identify/alias
    events and identification points in time order, join the groups events carry, and update
    profile stats from the person's own events (platform events are not activity). Runs inside
    processing's transaction, under its per-distinct_id locks.
    Returns each distinct_id's profile (as resolved: its stats may be older than the row's)."""
    ordered = sorted(events, key=lambda e: e.timestamp)
    for event in ordered:
        handler = IDENTITY_EVENT_HANDLERS.get(event.event_name)
        if handler is not None:
            handler(event)

    profiles = identities_resolve({e.distinct_id for e in ordered})
    if points:
        identification.identification_points_apply(events=ordered, profiles=profiles, points=points)
        profiles = identities_resolve({e.distinct_id for e in ordered})

    stats: dict[uuid.UUID, _Stats] = {}
    for event in ordered:
        if event.platform:
            continue  # not the person's activity: no last_seen, no counters
        profile = profiles[event.distinct_id]
        entry = stats.get(profile.pk)
        if entry is None:
            entry = stats[profile.pk] = _Stats(event.timestamp, event.timestamp)
        entry.events += 1
        entry.first_seen = min(entry.first_seen, event.timestamp)
        entry.last_seen = max(entry.last_seen, event.timestamp)
    for distinct_id in new_session_people:
        person = profiles.get(distinct_id)
        if person is not None and person.pk in stats:
            stats[person.pk].sessions += 1
    _profile_stats_add(stats)
    _event_groups_join(ordered, profiles)
    return profiles


def _profile_stats_add(stats: dict[uuid.UUID, _Stats]) -> None:
    if not stats:
        return
    locked = _lock_profiles(*stats.keys())
    moved_on = [p for p in locked.values() if p.merged_into_id is not None]
    if moved_on:
        # An explicit merge (not under processing's locks) committed after the identities were
        # read: the stats belong to the survivor.
        for profile in moved_on:
            survivor = profile_follow(profile)
            entry = stats.pop(profile.pk)
            if survivor.pk in stats:
                mine = stats[survivor.pk]
                mine.events += entry.events
                mine.sessions += entry.sessions
                mine.first_seen = min(mine.first_seen, entry.first_seen)
                mine.last_seen = max(mine.last_seen, entry.last_seen)
            else:
                stats[survivor.pk] = entry
        locked = _lock_profiles(*stats.keys())
    now = timezone.now()
    for pk, entry in stats.items():
        profile = locked[pk]
        profile.event_count += entry.events
        profile.session_count += entry.sessions
        profile.first_seen = _min_time(profile.first_seen, entry.first_seen)
        profile.last_seen = _max_time(profile.last_seen, entry.last_seen)
        profile.updated_at = now
    _profile_stats_write([locked[pk] for pk in stats])


def _event_groups_join(events: Sequence[ProcessableEvent], profiles: dict[str, Profile]) -> None:
    """Events can carry their groups: properties.$groups = {"company": "acme"}."""
    pairs = []
    for event in events:
        groups = event.properties.get("$groups") if isinstance(event.properties, dict) else None
        if not isinstance(groups, dict):
            continue
        for key, gid in groups.items():
            if isinstance(key, str) and isinstance(gid, str | int) and key and str(gid):
                group = group_get_or_create(group_key=key[:100], group_id=str(gid)[:200])
                pairs.append((profiles[event.distinct_id], group))
    if pairs:
        _memberships_add(pairs)
