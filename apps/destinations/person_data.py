"""A person's deliveries, for privacy requests (registered in DestinationsConfig.ready).

Before an erase, every enabled destination whose type declares support gets a
`profile_deleted` delivery per profile of the person (the subscriber below), so the systems
that received the person hear of the delete. Those deliveries are the one thing about the
person an erase keeps: they carry only the ids the other system needs to find its copy, and
go with the delivery log's retention once sent. Everything else (deliveries with their
payloads and attempt logs, the per-profile sync state) is deleted."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db.models import QuerySet

from apps.consents.privacy.hooks import Person, PersonDataHandler, delete_in_batches
from apps.destinations.models import Delivery, ProfileSyncState
from apps.destinations.services import destinations_profile_deleted

DELIVERIES = "deliveries"
SYNC_STATES = "destination_sync_states"
FORWARDED = "profile_deleted"


def _deliveries(person: Person) -> QuerySet[Delivery]:
    return Delivery.objects.filter(profile_id__in=person.profile_ids).exclude(trigger=FORWARDED)


def _states(person: Person) -> QuerySet[ProfileSyncState]:
    return ProfileSyncState.objects.filter(profile_id__in=person.profile_ids)


def _delivery_rows(person: Person) -> Iterator[dict[str, Any]]:
    rows = _deliveries(person).select_related("destination").order_by("created_at", "pk")
    for d in rows:
        yield {
            "destination": d.destination.name,
            "trigger": d.trigger,
            "key": d.key,
            "status": d.status,
            "attempts": d.attempts,
            "payload": d.payload,
            "created_at": d.created_at,
            "delivered_at": d.delivered_at,
            "profile_id": d.profile_id,
        }


def destinations_person_export(*, person: Person) -> dict[str, Iterable[dict[str, Any]]]:
    return {DELIVERIES: _delivery_rows(person)}


def _erase(table: str, rows: QuerySet[Any], progress: Callable[[str, int], None]) -> int:
    deleted = 0
    for per_model in delete_in_batches(rows):
        # The attempt log goes with its delivery (on_delete=CASCADE); counted apart.
        n = per_model.get(rows.model._meta.label, 0)
        deleted += n
        progress(table, n)
    return deleted


def destinations_person_erase(
    *, person: Person, progress: Callable[[str, int], None]
) -> dict[str, int]:
    return {
        DELIVERIES: _erase(DELIVERIES, _deliveries(person), progress),
        SYNC_STATES: _erase(SYNC_STATES, _states(person), progress),
    }


def destinations_person_count(*, person: Person) -> dict[str, int]:
    return {DELIVERIES: _deliveries(person).count(), SYNC_STATES: _states(person).count()}


def destinations_person_deleted(*, person: Person, request_id: uuid.UUID) -> None:
    """Forward the delete: a `profile_deleted` delivery per profile of the person, with all
    of their ids, to each destination whose type supports it (idempotent per profile)."""
    for profile_id in person.profile_ids:
        destinations_profile_deleted(profile_id, list(person.distinct_ids))


HANDLER = PersonDataHandler(
    app_label="destinations",
    export=destinations_person_export,
    erase=destinations_person_erase,
    count=destinations_person_count,
)
