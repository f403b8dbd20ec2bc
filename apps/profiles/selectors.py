"""Reads on profiles: lookups through identities and merge pointers, timelines, lists."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db.models import Prefetch, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Lower

from apps.profiles.models import (
    Group,
    GroupMembership,
    Identity,
    Profile,
    ProfileHistory,
    ProfileMerge,
)

# A chain of merge pointers is followed this far at most (a cycle would be a bug).
MAX_POINTER_HOPS = 20
LOOKUP_CHUNK = 5000


def profile_follow(profile: Profile) -> Profile:
    """The surviving profile this one was merged into (itself when it wasn't)."""
    hops = 0
    while profile.merged_into_id is not None and hops < MAX_POINTER_HOPS:
        profile = Profile.objects.get(pk=profile.merged_into_id)
        hops += 1
    return profile


def profile_ids_live(
    rows: Iterable[tuple[uuid.UUID, uuid.UUID | None]],
) -> dict[uuid.UUID, uuid.UUID]:
    """(id, merged_into_id) rows -> each profile id's live profile (itself, or the one it was
    merged into)."""
    return {pk: merged_into or pk for pk, merged_into in rows}


def profile_get(profile_id: uuid.UUID | str) -> Profile | None:
    """The profile with this id; for a merged profile, the profile it was merged into."""
    try:
        profile = Profile.objects.filter(pk=uuid.UUID(str(profile_id))).first()
    except ValueError:
        return None
    return profile_follow(profile) if profile is not None else None


def profile_get_for_distinct_id(distinct_id: str) -> Profile | None:
    identity = Identity.objects.select_related("profile").filter(distinct_id=distinct_id).first()
    return profile_follow(identity.profile) if identity else None


def profile_list() -> QuerySet[Profile]:
    """Live profiles (merged ones are pointers, not people)."""
    return Profile.objects.filter(merged_into__isnull=True)


def profile_detail_queryset() -> QuerySet[Profile]:
    return Profile.objects.prefetch_related(
        "identities",
        Prefetch("memberships", GroupMembership.objects.select_related("group__group_type")),
    )


def profile_distinct_ids(profile: Profile) -> list[str]:
    return list(profile.identities.values_list("distinct_id", flat=True))


def profile_merges(profile: Profile) -> QuerySet[ProfileMerge]:
    return ProfileMerge.objects.filter(survivor=profile) | ProfileMerge.objects.filter(
        merged=profile
    )


def profile_history(profile: Profile) -> QuerySet[ProfileHistory]:
    return ProfileHistory.objects.filter(profile=profile)


def group_list() -> QuerySet[Group]:
    return Group.objects.select_related("group_type")


def group_find(*, group_key: str, group_id: str) -> Group | None:
    return Group.objects.filter(group_type__key=group_key, group_id=group_id).first()


def group_members(group: Group) -> QuerySet[Profile]:
    return Profile.objects.filter(memberships__group=group)


def profiles_for_distinct_ids(distinct_ids: Iterable[str]) -> dict[str, Profile]:
    """Each known distinct_id's (live) profile, in one query for the lot."""
    rows = Identity.objects.select_related("profile").filter(distinct_id__in=set(distinct_ids))
    return {row.distinct_id: profile_follow(row.profile) for row in rows}


def profiles_resolve(
    *,
    profile_ids: Iterable[str] = (),
    distinct_ids: Iterable[str] = (),
    emails: Iterable[str] = (),
) -> tuple[set[uuid.UUID], list[str]]:
    """The live profiles named by profile ids, distinct ids or emails (private or public
    `email` trait, or an email identity, case-insensitive), and the inputs that named none."""
    found: set[uuid.UUID] = set()
    unknown: list[str] = []

    ids: dict[uuid.UUID, str] = {}
    for raw in profile_ids:
        try:
            ids[uuid.UUID(str(raw))] = str(raw)
        except ValueError:
            unknown.append(str(raw))
    known = profile_ids_live(
        Profile.objects.filter(pk__in=list(ids)).values_list("id", "merged_into_id")
    )
    for pk, raw in ids.items():
        if pk in known:
            found.add(known[pk])
        else:
            unknown.append(raw)

    wanted = list(dict.fromkeys(str(d) for d in distinct_ids))
    by_id: dict[str, uuid.UUID] = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        identities = Identity.objects.filter(distinct_id__in=wanted[start : start + LOOKUP_CHUNK])
        for distinct_id, pk, merged_into in identities.values_list(
            "distinct_id", "profile_id", "profile__merged_into_id"
        ):
            by_id[distinct_id] = merged_into or pk
    found.update(by_id.values())
    unknown.extend(d for d in wanted if d not in by_id)

    mails = list(dict.fromkeys(str(e).strip().lower() for e in emails if str(e).strip()))
    matched: set[str] = set()
    for start in range(0, len(mails), LOOKUP_CHUNK):
        chunk = mails[start : start + LOOKUP_CHUNK]
        profiles = (
            Profile.objects.filter(merged_into__isnull=True)
            .annotate(
                private_email=Lower(KT("private_traits__email")),
                public_email=Lower(KT("traits__email")),
            )
            .filter(Q(private_email__in=chunk) | Q(public_email__in=chunk))
            .values_list("id", "private_email", "public_email")
        )
        for pk, private_email, public_email in profiles:
            found.add(pk)
            matched.update(e for e in (private_email, public_email) if e)
        by_email = Identity.objects.filter(distinct_id__in=[f"email:{e}" for e in chunk])
        for distinct_id, pk in by_email.values_list("distinct_id", "profile_id"):
            found.add(pk)
            matched.add(distinct_id.removeprefix("email:"))
    unknown.extend(e for e in mails if e not in matched)
    return found, unknown
