"""Writing deliveries: each in the transaction of the change that causes it (event processing,
a profile change, a segment entry or exit, a workflow node, a privacy request), unique by its
idempotency key, then the destination's worker is woken once the transaction commits."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.db import transaction
from django.utils import timezone

from apps.destinations.consents import destination_consents_allow
from apps.destinations.models import (
    Delivery,
    DeliveryStatus,
    Destination,
    ProfileSyncState,
    Trigger,
)
from apps.destinations.services.mapping import (
    MappingError,
    envelope,
    event_view,
    mapped,
    parsed_event_filter,
    profile_view,
)
from apps.destinations.types import destination_type
from apps.profiles import services as profile_services
from apps.profiles.models import Identity, Profile, ProfileMerge
from apps.segments.filtering import FilterError, evaluate
from cdp.tasks import enqueue_on_commit

logger = logging.getLogger(__name__)

DELIVER_TASK = "apps.destinations.tasks.deliver"


def _enabled(*triggers: str) -> list[Destination]:
    return list(
        Destination.objects.filter(enabled=True, trigger__in=triggers).select_related("resource")
    )


def deliveries_wake(destination_ids: Iterable[int], *, eta: datetime | None = None) -> None:
    """Queue the destinations' workers once the current transaction commits (a failed publish
    is logged: the periodic dispatch finds due deliveries anyway)."""
    for destination_id in sorted(set(destination_ids)):
        enqueue_on_commit(
            DELIVER_TASK,
            [destination_id],
            eta=eta,
            description=(
                f"the deliveries of destination {destination_id}; the periodic dispatch "
                "will send them"
            ),
        )


def _write(rows: list[Delivery]) -> int:
    """Insert deliveries (a key already written is skipped: the same change never yields two)
    and wake their destinations."""
    if not rows:
        return 0
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    now = timezone.now()
    deliveries_wake({r.destination_id for r in rows if r.next_attempt_at <= now})
    for row in rows:
        if row.next_attempt_at > now:  # debounced: the worker comes back when it is due
            deliveries_wake([row.destination_id], eta=row.next_attempt_at)
    return len(rows)


def _row(
    destination: Destination,
    *,
    key: str,
    trigger: str,
    data: Any,
    profile_id: uuid.UUID | None,
    due: datetime | None = None,
) -> Delivery:
    return Delivery(
        destination=destination,
        key=key[:200],
        trigger=trigger,
        profile_id=profile_id,
        payload=envelope(trigger, data),
        status=DeliveryStatus.PENDING,
        next_attempt_at=due or timezone.now(),
    )


def _render(destination: Destination, trigger: str, scope: dict[str, Any]) -> Any:
    try:
        return mapped(destination, trigger, scope)
    except MappingError as exc:
        logger.warning("Destination %s: its mapping failed, nothing queued (%s)", destination, exc)
        return None


# --- events and profile changes of event processing -------------------------------------------


def destinations_events_processed(*, events: Sequence[Any], profiles: dict[str, Profile]) -> None:
    """The pipeline's last step (inside processing's transaction): deliveries for the event
    destinations whose sources and filter match, and for the profile destinations of the
    profiles whose traits or identities these events changed."""
    destinations = _enabled(Trigger.EVENT, Trigger.PROFILE_CHANGED)
    if not destinations or not events:
        return
    rows: list[Delivery] = []
    for destination in destinations:
        if destination.trigger == Trigger.EVENT:
            rows.extend(_event_rows(destination, events, profiles))
    profile_destinations = [d for d in destinations if d.trigger == Trigger.PROFILE_CHANGED]
    if profile_destinations:
        changed = {
            profiles[e.distinct_id].pk
            for e in events
            if e.event_name in profile_services.IDENTITY_EVENTS and e.distinct_id in profiles
        }
        if changed:
            rows.extend(_profile_rows(profile_destinations, changed))
    _write(rows)


def _event_rows(
    destination: Destination, events: Sequence[Any], profiles: dict[str, Profile]
) -> list[Delivery]:
    config = destination.trigger_config or {}
    sources = {str(s) for s in config.get("sources") or []}
    tree = config.get("filter")
    parsed = parsed_event_filter(json.dumps(tree, sort_keys=True)) if tree else None
    rows = []
    for event in events:
        if sources and str(event.source_id) not in sources:
            continue
        profile = profiles.get(event.distinct_id)
        if parsed is not None:
            try:
                if not evaluate(parsed, profile=profile, event=event):
                    continue
            except FilterError:
                logger.exception("Destination %s: its filter can't be evaluated", destination)
                continue
        profile_id = profile.pk if profile is not None else None
        if not destination_consents_allow(
            required_consents=destination.required_consents, profile_id=profile_id
        ):
            continue
        data = _render(
            destination, "event", {"event": event_view(event), "profile": profile_view(profile)}
        )
        if data is None:
            continue
        rows.append(
            _row(
                destination,
                key=f"event:{event.source_id}:{event.message_id}",
                trigger="event",
                data=data,
                profile_id=profile_id,
            )
        )
    return rows


def _watched_hash(destination: Destination, profile: Profile) -> str:
    traits = profile.traits if isinstance(profile.traits, dict) else {}
    private = profile.private_traits if isinstance(profile.private_traits, dict) else {}
    names = (destination.trigger_config or {}).get("traits") or []
    state: Any = (
        {name: traits.get(name, private.get(name)) for name in names}
        if names
        else {"traits": traits, "private": private}
    )
    return hashlib.sha256(orjson.dumps(state, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(slots=True)
class _MergeNote:
    names: list[str]  # the profiles merged into the survivor
    key: str = ""  # the delivery that announced them, if one was written
    stamp: str = ""  # its envelope time


class _MergeNotes(threading.local):
    """The merges of this thread's transaction, by (destination id, survivor id), until it
    commits. A later change of the survivor in the same transaction (the identify's own traits,
    applied after its merge) updates the merge's delivery instead of adding one or, when the
    merge itself changed no watched trait, is the delivery that says merged_from. A note is
    checked against the database (the delivery unsent, with the same envelope time; the
    profiles still merged into the survivor), so one left by a rollback matches nothing."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, uuid.UUID], _MergeNote] = {}

    def clear(self) -> None:
        self.rows.clear()


_merge_notes = _MergeNotes()


def _merge_note(
    destination_id: int, profile_id: uuid.UUID, names: list[str], *, key: str = "", stamp: str = ""
) -> None:
    transaction.on_commit(_merge_notes.clear)
    note = _merge_notes.rows.setdefault((destination_id, profile_id), _MergeNote(names=[]))
    note.names = sorted({*note.names, *names})
    if key:
        note.key, note.stamp = key, stamp


def _merged_from_of(waiting: Delivery) -> list[str]:
    data = waiting.payload.get("data") if isinstance(waiting.payload, dict) else None
    names = data.get("merged_from") if isinstance(data, dict) else None
    return [str(n) for n in names] if isinstance(names, list) else []


def _noted(destination: Destination, profile_id: uuid.UUID) -> tuple[Delivery | None, list[str]]:
    """The merges into this profile earlier in this transaction: the delivery that announced
    them if it is still unsent, and the profiles merged in ((None, []) without one)."""
    note = _merge_notes.rows.get((destination.pk, profile_id))
    if note is None:
        return None, []
    merged = Profile.objects.filter(pk__in=note.names, merged_into_id=profile_id)
    names = sorted(str(pk) for pk in merged.values_list("pk", flat=True))
    if not note.key:
        return None, names
    waiting = (
        Delivery.objects.select_for_update(skip_locked=True)
        .filter(destination=destination, key=note.key, status=DeliveryStatus.PENDING, attempts=0)
        .first()
    )
    if waiting is None or waiting.payload.get("timestamp") != note.stamp:
        return None, names
    return waiting, names


def _profile_rows(
    destinations: list[Destination],
    profile_ids: Iterable[uuid.UUID],
    *,
    merged_from: dict[uuid.UUID, list[str]] | None = None,
) -> list[Delivery]:
    """Deliveries for profiles whose watched traits changed since what each destination last
    queued. Within a destination's debounce window, a change updates the delivery still
    waiting instead of adding one (the latest state is sent once). `merged_from` names, per
    survivor, the profiles a merge just folded into it (sent as the payload's `merged_from`,
    kept when a later change updates that delivery)."""
    merged_from = merged_from or {}
    ids = sorted(set(profile_ids))
    profiles = list(Profile.objects.filter(pk__in=ids, merged_into__isnull=True))
    if not profiles:
        return []
    states = {
        (s.destination_id, s.profile_id): s
        for s in ProfileSyncState.objects.select_for_update().filter(
            destination__in=destinations, profile_id__in=ids
        )
    }
    now = timezone.now()
    rows: list[Delivery] = []
    new_states: list[ProfileSyncState] = []
    changed_states: list[ProfileSyncState] = []
    for destination in destinations:
        debounce = float((destination.trigger_config or {}).get("debounce_seconds") or 0)
        for profile in profiles:
            digest = _watched_hash(destination, profile)
            state = states.get((destination.pk, profile.pk))
            if state is not None and state.state_hash == digest:
                if merged_from.get(profile.pk):  # a later change in this transaction says it
                    _merge_note(destination.pk, profile.pk, merged_from[profile.pk])
                continue
            if not destination_consents_allow(
                required_consents=destination.required_consents, profile_id=profile.pk
            ):
                continue
            waiting, carried = _noted(destination, profile.pk)
            if waiting is None and debounce:
                waiting = _debounced_waiting(destination, profile.pk, now)
                carried += _merged_from_of(waiting) if waiting is not None else []
            names = sorted({*merged_from.get(profile.pk, []), *carried})
            scope: dict[str, Any] = {"profile": profile_view(profile)}
            if names:
                scope["merged_from"] = names
            data = _render(destination, "profile_changed", scope)
            if data is None:
                continue
            if state is None:
                state = ProfileSyncState(
                    destination=destination, profile_id=profile.pk, state_hash=digest, sequence=1
                )
                new_states.append(state)
            else:
                state.state_hash, state.sequence = digest, state.sequence + 1
                changed_states.append(state)
            payload = envelope("profile_changed", data)
            if waiting is not None:
                waiting.payload = payload
                waiting.save(update_fields=["payload"])
                key = waiting.key
            else:
                key = f"profile:{profile.pk}:{state.sequence}"
                rows.append(
                    _row(
                        destination,
                        key=key,
                        trigger="profile_changed",
                        data=data,
                        profile_id=profile.pk,
                        due=now + timedelta(seconds=debounce),
                    )
                )
                payload = rows[-1].payload
            if names:
                _merge_note(destination.pk, profile.pk, names, key=key, stamp=payload["timestamp"])
    ProfileSyncState.objects.bulk_create(new_states)
    ProfileSyncState.objects.bulk_update(changed_states, ["state_hash", "sequence"])
    return rows


def _debounced_waiting(
    destination: Destination, profile_id: uuid.UUID, now: datetime
) -> Delivery | None:
    """The delivery still waiting out its debounce, if any (locked, skipping one a worker
    holds: then a new delivery is written)."""
    return (
        Delivery.objects.select_for_update(skip_locked=True)
        .filter(
            destination=destination,
            profile_id=profile_id,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at__gt=now,
        )
        .order_by("-id")
        .first()
    )


def destinations_profiles_changed(*, profile_ids: Iterable[uuid.UUID | str]) -> None:
    """The profiles hook (a change outside event processing: people operations, merges,
    groups), inside the change's transaction."""
    destinations = _enabled(Trigger.PROFILE_CHANGED)
    if destinations:
        _write(_profile_rows(destinations, [uuid.UUID(str(p)) for p in profile_ids]))


def destinations_profiles_merged(*, merge: ProfileMerge) -> None:
    """The profiles merge hook (identify, alias, identification points, explicit merges),
    inside the merge's transaction: the survivor is delivered like any profile change, when
    its watched traits changed, with `merged_from` naming the profile merged into it."""
    destinations = _enabled(Trigger.PROFILE_CHANGED)
    if destinations:
        # The merged profile is gone for receivers told so: should an unmerge give it back,
        # it is delivered again even if unchanged since its last delivery.
        ProfileSyncState.objects.filter(
            destination__in=destinations, profile_id=merge.merged_id
        ).update(state_hash="")
        survivor = uuid.UUID(str(merge.survivor_id))
        rows = _profile_rows(
            destinations, [survivor], merged_from={survivor: [str(merge.merged_id)]}
        )
        _write(rows)


def destinations_profiles_unmerged(*, merge: ProfileMerge) -> None:
    """The profiles unmerge hook: both profiles changed (each has its own traits back)."""
    destinations_profiles_changed(profile_ids=[merge.survivor_id, merge.merged_id])


# --- segments ---------------------------------------------------------------------------------


def destinations_segment_changed(
    *,
    segment_key: str,
    segment_name: str,
    entered: Sequence[tuple[Any, Any]],
    exited: Sequence[tuple[Any, Any]],
) -> None:
    """The segments hook: people entered or left a segment (stays as (stay id, profile id)),
    inside the transaction that changed the membership."""
    destinations = [
        d
        for d in _enabled(Trigger.SEGMENT_ENTERED, Trigger.SEGMENT_EXITED)
        if (d.trigger_config or {}).get("segment") == segment_key
    ]
    if not destinations:
        return
    profile_ids = {p for _, p in (*entered, *exited)}
    profiles = {p.pk: p for p in Profile.objects.filter(pk__in=profile_ids)}
    segment = {"key": segment_key, "name": segment_name}
    rows = []
    for destination in destinations:
        stays = entered if destination.trigger == Trigger.SEGMENT_ENTERED else exited
        for stay_id, profile_id in stays:
            profile = profiles.get(profile_id)
            if not destination_consents_allow(
                required_consents=destination.required_consents, profile_id=profile_id
            ):
                continue
            data = _render(
                destination,
                destination.trigger,
                {"segment": segment, "profile": profile_view(profile)},
            )
            if data is None:
                continue
            rows.append(
                _row(
                    destination,
                    key=f"{destination.trigger}:{stay_id}",
                    trigger=destination.trigger,
                    data=data,
                    profile_id=profile_id,
                )
            )
    _write(rows)


# --- workflow nodes and privacy requests ------------------------------------------------------


def destination_send_from_workflow(
    *, destination: Destination, key: str, data: Any, profile_id: uuid.UUID | None
) -> bool:
    """A workflow's `send_to_destination` node, when its run's changes are applied (in that
    transaction). Returns whether a delivery was written (consents allowing)."""
    if not destination.enabled:
        return False
    if not destination_consents_allow(
        required_consents=destination.required_consents, profile_id=profile_id
    ):
        return False
    return bool(
        _write([_row(destination, key=key, trigger="workflow", data=data, profile_id=profile_id)])
    )


def destinations_profile_deleted(profile_id: uuid.UUID | str, identities: Sequence[str]) -> int:
    """A privacy request erased a profile: tell every enabled destination whose type can take
    it (a `profile_deleted` delivery with the profile id and its distinct ids). Call it inside
    the erasure's transaction. Returns how many deliveries were written."""
    pid = uuid.UUID(str(profile_id))
    rows = []
    for destination in Destination.objects.filter(enabled=True):
        cls = destination_type(destination.kind)
        if cls is None or not cls.supports_profile_deleted:
            continue
        rows.append(
            _row(
                destination,
                key=f"profile_deleted:{pid}",
                trigger="profile_deleted",
                data={"profile_id": str(pid), "identities": sorted(identities)},
                profile_id=pid,
            )
        )
    return _write(rows)


def profile_identities(profile_id: uuid.UUID | str) -> list[str]:
    """The distinct ids of a profile (what destinations_profile_deleted forwards)."""
    ids = Identity.objects.filter(profile_id=profile_id).values_list("distinct_id", flat=True)
    return sorted(ids)
