"""Groups: get or create one, set a profile's membership, update a group's properties."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.profiles import hooks
from apps.profiles import traits as trait_ops
from apps.profiles.models import (
    Group,
    GroupMembership,
    GroupType,
    Profile,
)
from apps.profiles.selectors import profile_follow
from apps.profiles.services.identity import identities_resolve


def group_get_or_create(*, group_key: str, group_id: str) -> Group:
    group_type, _ = GroupType.objects.get_or_create(key=group_key)
    group, _ = Group.objects.get_or_create(group_type=group_type, group_id=group_id)
    return group


def group_membership_set(
    *,
    distinct_id: str,
    action: str,
    group_key: str,
    group_id: str,
    reevaluate_segments: bool = True,
) -> Profile:
    """add: join the group; remove: leave it; set: join it and leave the others of its type.
    The profile's segments are re-evaluated after the commit (unless event processing does)."""
    with transaction.atomic():
        profile = profile_follow(identities_resolve([distinct_id])[distinct_id])
        if reevaluate_segments:
            hooks.profiles_changed(profile_ids=[profile.pk])
        group = group_get_or_create(group_key=group_key, group_id=group_id)
        if action == "remove":
            GroupMembership.objects.filter(profile=profile, group=group).delete()
            return profile
        if action == "set":
            GroupMembership.objects.filter(
                profile=profile, group__group_type=group.group_type
            ).exclude(group=group).delete()
        GroupMembership.objects.get_or_create(profile=profile, group=group)
        return profile


def group_properties_update(
    *, group_key: str, group_id: str, ops: dict[str, Any], at: datetime | None = None
) -> tuple[Group, dict[str, str]]:
    """Apply set / set_once / unset to the group's properties. When they changed, the members'
    segments reading the group's type are re-evaluated after the commit."""
    at = at or timezone.now()
    with transaction.atomic():
        group = group_get_or_create(group_key=group_key, group_id=group_id)
        group = Group.objects.select_for_update().get(pk=group.pk)
        before = copy.deepcopy(group.properties)
        target = trait_ops.TraitTarget(group.properties, None, group.property_meta)
        errors = trait_ops.apply_operations(target, ops, at)
        group.save(update_fields=["properties", "property_meta", "updated_at"])
        if group.properties != before:
            # The segments reading this group type, for its members, after the commit.
            hooks.group_changed(group_id=group.pk)
        return group, errors


def _memberships_add(pairs: Iterable[tuple[Profile, Group]]) -> None:
    GroupMembership.objects.bulk_create(
        [GroupMembership(profile=p, group=g) for p, g in pairs], ignore_conflicts=True
    )
