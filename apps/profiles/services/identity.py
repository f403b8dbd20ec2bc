"""Identity resolution (distinct_id -> profile), identify and alias."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.profiles import traits as trait_ops
from apps.profiles.models import (
    Identity,
    IdentityKind,
    MergeTrigger,
    Profile,
)
from apps.profiles.selectors import profile_follow
from apps.profiles.services.merges import _known_ids, _refuse, profile_merge
from apps.profiles.services.storage import _target


def identities_resolve(
    distinct_ids: Iterable[str], *, kind: str = IdentityKind.ANONYMOUS
) -> dict[str, Profile]:
    """The profile of each distinct_id; a first-seen id gets a new profile. Callers hold the
    per-distinct_id locks of processing, so two workers can't create the same identity."""
    wanted = set(distinct_ids)
    found = {
        identity.distinct_id: identity.profile
        for identity in Identity.objects.filter(distinct_id__in=wanted).select_related("profile")
    }
    missing = sorted(wanted - found.keys())
    if missing:
        identified = kind == IdentityKind.USER_ID
        profiles = [Profile(identified=identified) for _ in missing]
        Profile.objects.bulk_create(profiles)
        Identity.objects.bulk_create(
            Identity(distinct_id=d, profile=p, kind=kind)
            for d, p in zip(missing, profiles, strict=True)
        )
        found.update(zip(missing, profiles, strict=True))
    return found


def _identity_add(profile: Profile, distinct_id: str, kind: str) -> None:
    Identity.objects.create(distinct_id=distinct_id, profile=profile, kind=kind)
    if kind == IdentityKind.USER_ID and not profile.identified:
        profile.identified = True
        profile.save(update_fields=["identified", "updated_at"])


def profile_identify(
    *,
    distinct_id: str,
    anonymous_id: str = "",
    traits: dict[str, Any] | None = None,
    private_traits: dict[str, Any] | None = None,
    at: datetime | None = None,
    triggered_by: str = "",
) -> Profile:
    """`distinct_id` is a known user id. Link `anonymous_id` (the device's id before login) to
    it, so the anonymous history belongs to the known profile. Never merges two profiles that
    are both identified: that is refused and recorded as a conflict."""
    at = at or timezone.now()
    with transaction.atomic():
        identity = (
            Identity.objects.select_related("profile").filter(distinct_id=distinct_id).first()
        )
        anon = (
            Identity.objects.select_related("profile").filter(distinct_id=anonymous_id).first()
            if anonymous_id and anonymous_id != distinct_id
            else None
        )
        if identity is None and anon is None:
            profile = Profile.objects.create(identified=True)
            _identity_add(profile, distinct_id, IdentityKind.USER_ID)
            if anonymous_id and anonymous_id != distinct_id:
                _identity_add(profile, anonymous_id, IdentityKind.ANONYMOUS)
        elif identity is None:
            assert anon is not None
            device_profile = profile_follow(anon.profile)
            if device_profile.identified:
                # The device already belongs to another known user: this user gets their own.
                profile = Profile.objects.create(identified=True)
                _identity_add(profile, distinct_id, IdentityKind.USER_ID)
                _refuse(
                    profile,
                    device_profile,
                    MergeTrigger.IDENTIFY,
                    triggered_by,
                    f"{anonymous_id!r} already belongs to known user(s) "
                    f"{_known_ids(device_profile)}; {distinct_id!r} got a profile of its own",
                )
            else:
                profile = device_profile
                _identity_add(profile, distinct_id, IdentityKind.USER_ID)
        else:
            profile = profile_follow(identity.profile)
            if identity.kind != IdentityKind.USER_ID:
                Identity.objects.filter(pk=identity.pk).update(kind=IdentityKind.USER_ID)
            if not profile.identified:
                profile.identified = True
                profile.save(update_fields=["identified", "updated_at"])
            if anonymous_id and anonymous_id != distinct_id:
                if anon is None:
                    _identity_add(profile, anonymous_id, IdentityKind.ANONYMOUS)
                else:
                    other = profile_follow(anon.profile)
                    if other.pk != profile.pk:
                        if other.identified:
                            _refuse(
                                profile,
                                other,
                                MergeTrigger.IDENTIFY,
                                triggered_by,
                                f"{anonymous_id!r} belongs to known user(s) "
                                f"{_known_ids(other)}, not {distinct_id!r}",
                            )
                        else:
                            profile_merge(
                                survivor=profile,
                                merged=other,
                                trigger=MergeTrigger.IDENTIFY,
                                triggered_by=triggered_by,
                            )
                            profile.refresh_from_db()
        if traits or private_traits:
            _apply_traits(profile, traits or {}, private_traits or {}, at)
        return profile


def _apply_traits(
    profile: Profile, traits: dict[str, Any], private_traits: dict[str, Any], at: datetime
) -> None:
    target = _target(profile)
    trait_ops.apply_operations(target, {"set": traits}, at)
    trait_ops.apply_operations(target, {"set": private_traits}, at, private=True)
    profile.save(update_fields=["traits", "private_traits", "trait_meta", "updated_at"])


def profile_alias(*, distinct_id: str, alias: str, triggered_by: str = "") -> Profile:
    """`alias` is another id of the person `distinct_id` is. An alias is explicit, so it may
    merge two profiles (the one of distinct_id survives)."""
    with transaction.atomic():
        profile = profile_follow(identities_resolve([distinct_id])[distinct_id])
        existing = Identity.objects.select_related("profile").filter(distinct_id=alias).first()
        if existing is None:
            _identity_add(profile, alias, IdentityKind.ALIAS)
        else:
            other = profile_follow(existing.profile)
            if other.pk != profile.pk:
                profile_merge(
                    survivor=profile,
                    merged=other,
                    trigger=MergeTrigger.ALIAS,
                    triggered_by=triggered_by,
                )
                profile.refresh_from_db()
        return profile


def profile_identify_by(
    *, profile: Profile, identifier: str, kind: str, triggered_by: str
) -> Profile:
    """An identification point found `identifier` (e.g. "email:ann@example.com") on an event of
    `profile`: another profile with the same identifier is merged with it, unless both are known
    users with different ids (refused and recorded)."""
    profile = profile_follow(profile)
    existing = Identity.objects.select_related("profile").filter(distinct_id=identifier).first()
    if existing is None:
        _identity_add(profile, identifier, kind)
        return profile
    other = profile_follow(existing.profile)
    if other.pk == profile.pk:
        return profile
    if profile.identified and other.identified:
        _refuse(
            profile,
            other,
            MergeTrigger.IDENTIFICATION_POINT,
            triggered_by,
            f"{identifier} is shared by known users {_known_ids(profile)} and {_known_ids(other)}",
        )
        return profile
    # The known profile survives; between two anonymous ones, the older.
    if other.identified or (not profile.identified and other.created_at < profile.created_at):
        survivor, merged = other, profile
    else:
        survivor, merged = profile, other
    profile_merge(
        survivor=survivor,
        merged=merged,
        trigger=MergeTrigger.IDENTIFICATION_POINT,
        triggered_by=triggered_by,
    )
    return profile_follow(survivor)


def identity_lock_names(distinct_ids: Iterable[str]) -> set[str]:
    """The lock name of each distinct_id or identifier ("email:ann@example.com"): what
    processing holds while it resolves, creates or merges their identities."""
    return {f"d:{distinct_id}" for distinct_id in distinct_ids}
