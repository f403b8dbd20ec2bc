"""Reads on profiles: lookups through identities and merge pointers, timelines, lists."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db.models import Prefetch, QuerySet

from apps.profiles.models import (
    Group,
    GroupMembership,
    Identity,
    Profile,
    ProfileHistory,
    ProfileMerge,
)
from apps.profiles.services import profile_follow


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


def group_members(group: Group) -> QuerySet[Profile]:
    return Profile.objects.filter(memberships__group=group)


def profiles_for_distinct_ids(distinct_ids: Iterable[str]) -> dict[str, Profile]:
    """Each known distinct_id's (live) profile, in one query for the lot."""
    rows = Identity.objects.select_related("profile").filter(distinct_id__in=set(distinct_ids))
    return {row.distinct_id: profile_follow(row.profile) for row in rows}
