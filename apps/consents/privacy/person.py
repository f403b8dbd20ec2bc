"""Who a privacy request is about: the profile an id resolves to, every profile merged into
it (a merge keeps the merged profile as a pointer), and every id of all of them."""

from __future__ import annotations

import uuid

from apps.consents.privacy.hooks import Person
from apps.events.models import Event
from apps.profiles.models import Identity, Profile, ProfileMerge
from apps.profiles.selectors import profile_follow

MAX_PROFILES = 10_000  # a bound on the merge tree walk (a person has a handful)


def person_resolve(*, distinct_id: str) -> Person:
    """The person behind an id. An id with no profile (events stored but never processed, or
    nothing at all) is a person with that one id."""
    identity = Identity.objects.select_related("profile").filter(distinct_id=distinct_id).first()
    if identity is None:
        return Person(profile_ids=(), distinct_ids=(distinct_id,))
    survivor = profile_follow(identity.profile)
    profile_ids: list[uuid.UUID] = [survivor.pk]
    frontier = [survivor.pk]
    while frontier and len(profile_ids) < MAX_PROFILES:
        frontier = list(
            Profile.objects.filter(merged_into_id__in=frontier)
            .exclude(pk__in=profile_ids)
            .values_list("pk", flat=True)
        )
        profile_ids.extend(frontier)
    ids = set(
        Identity.objects.filter(profile_id__in=profile_ids).values_list("distinct_id", flat=True)
    )
    for moved in ProfileMerge.objects.filter(merged_id__in=profile_ids).values_list(
        "moved_distinct_ids", flat=True
    ):
        ids.update(i for i in moved or [] if isinstance(i, str))
    ids.add(distinct_id)
    return Person(profile_ids=tuple(profile_ids), distinct_ids=tuple(sorted(ids)))


def person_exists(person: Person) -> bool:
    """Whether anything is stored about the person (a profile, or events of its ids)."""
    return (
        bool(person.profile_ids)
        or Event.objects.filter(distinct_id__in=person.distinct_ids).exists()
    )
