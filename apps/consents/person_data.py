"""A person's consents and their history, for privacy requests (registered in
ConsentsConfig.ready, like the apps above register theirs)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db.models import Q, QuerySet

from apps.consents.models import ConsentChange, ProfileConsent
from apps.consents.privacy.hooks import Person, PersonDataHandler, delete_in_batches

CONSENTS = "profile_consents"
CHANGES = "consent_changes"


def _consents(person: Person) -> QuerySet[ProfileConsent]:
    return ProfileConsent.objects.filter(profile_id__in=person.profile_ids)


def _changes(person: Person) -> QuerySet[ConsentChange]:
    # The history also names the id a decision came in under (it may be an alias).
    return ConsentChange.objects.filter(
        Q(profile_id__in=person.profile_ids) | Q(distinct_id__in=person.distinct_ids)
    )


def _consent_rows(person: Person) -> Iterator[dict[str, Any]]:
    for c in _consents(person).select_related("consent_type").order_by("decided_at", "pk"):
        yield {
            "consent_type": c.consent_type.key,
            "granted": c.granted,
            "decided_at": c.decided_at,
            "expires_at": c.expires_at,
            "channel": c.channel,
            "source_id": c.source_id,
            "profile_id": c.profile_id,
        }


def _change_rows(person: Person) -> Iterator[dict[str, Any]]:
    for c in _changes(person).select_related("consent_type").order_by("at", "pk"):
        yield {
            "consent_type": c.consent_type.key,
            "granted": c.granted,
            "previous": c.previous,
            "at": c.at,
            "expires_at": c.expires_at,
            "channel": c.channel,
            "source_id": c.source_id,
            "distinct_id": c.distinct_id,
            "actor": c.actor,
            "profile_id": c.profile_id,
        }


def consents_person_export(*, person: Person) -> dict[str, Iterable[dict[str, Any]]]:
    return {CONSENTS: _consent_rows(person), CHANGES: _change_rows(person)}


def _erase(table: str, rows: QuerySet[Any], progress: Callable[[str, int], None]) -> int:
    deleted = 0
    for per_model in delete_in_batches(rows):
        n = per_model.get(rows.model._meta.label, 0)
        deleted += n
        progress(table, n)
    return deleted


def consents_person_erase(
    *, person: Person, progress: Callable[[str, int], None]
) -> dict[str, int]:
    return {
        CHANGES: _erase(CHANGES, _changes(person), progress),
        CONSENTS: _erase(CONSENTS, _consents(person), progress),
    }


def consents_person_count(*, person: Person) -> dict[str, int]:
    return {CONSENTS: _consents(person).count(), CHANGES: _changes(person).count()}


HANDLER = PersonDataHandler(
    app_label="consents",
    export=consents_person_export,
    erase=consents_person_erase,
    count=consents_person_count,
)
