"""People operations ($set, $set_once, $add, ...) on one or many profiles."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.profiles import hooks
from apps.profiles import traits as trait_ops
from apps.profiles.models import (
    Identity,
    Profile,
)
from apps.profiles.selectors import profile_follow
from apps.profiles.services.identity import identities_resolve
from apps.profiles.services.storage import _lock_profiles, _profile_traits_write, _target


@dataclass(slots=True)
class PeopleResult:
    profile: Profile | None
    errors: dict[str, str]
    deleted: bool = False


def people_apply(
    *,
    distinct_id: str,
    ops: dict[str, Any],
    at: datetime | None = None,
    reevaluate_segments: bool = True,
) -> PeopleResult:
    """Apply people operations to the profile of distinct_id (created when new), in the order
    set_once, set, increment, append, union, remove, unset; `delete` deletes the profile with
    its identities. Keys that can't be applied (incrementing a string) are reported, the rest
    applied. The profile's segments are re-evaluated after the commit (event processing, which
    re-evaluates them itself, passes reevaluate_segments=False)."""
    at = at or timezone.now()
    with transaction.atomic():
        if ops.get("delete"):
            identity = Identity.objects.filter(distinct_id=distinct_id).first()
            if identity is None:
                return PeopleResult(profile=None, errors={}, deleted=False)
            profile = profile_follow(identity.profile)
            Profile.objects.filter(merged_into=profile).delete()
            profile.delete()
            return PeopleResult(profile=None, errors={}, deleted=True)
        profile = profile_follow(identities_resolve([distinct_id])[distinct_id])
        profile = _lock_profiles(profile.pk)[profile.pk]
        errors = trait_ops.apply_operations(_target(profile), ops, at)
        profile.save(update_fields=["traits", "private_traits", "trait_meta", "updated_at"])
        if reevaluate_segments:
            hooks.profiles_changed(profile_ids=[profile.pk])
        return PeopleResult(profile=profile, errors=errors)


def people_apply_many(
    *,
    changes: Sequence[tuple[str, Sequence[dict[str, Any]]]],
    at: datetime | None = None,
    reevaluate_segments: bool = True,
) -> list[PeopleResult]:
    """Apply many people's operations at once: one identity read, one lock of every profile
    (in id order), one write, and one segment re-evaluation of them all after the commit.

    Each change is (distinct_id, [ops, ops, ...]): its ops dicts are applied in order, as
    people_apply applies one, and all or nothing: when a key can't be applied (incrementing a
    string), none of that change is (its result reports the errors, its profile unchanged),
    as if people_apply had run for it in a savepoint that was rolled back. Changes of the same
    person apply in the given order. `delete` is not an operation here (use people_apply).
    Returns one result per change, in order."""
    if any("delete" in ops for _, steps in changes for ops in steps):
        raise ValueError("people_apply_many does not delete profiles: use people_apply")
    if not changes:
        return []
    at = at or timezone.now()
    with transaction.atomic():
        resolved = identities_resolve({distinct_id for distinct_id, _ in changes})
        owner = {d: profile_follow(profile).pk for d, profile in resolved.items()}
        locked = _lock_profiles(*owner.values())
        if any(p.merged_into_id is not None for p in locked.values()):
            # Merged after the identities were read (a merge outside processing's locks): the
            # changes belong to the survivors.
            owner = {d: profile_follow(locked[pk]).pk for d, pk in owner.items()}
            locked = _lock_profiles(*owner.values())
        results: list[PeopleResult] = []
        changed: dict[uuid.UUID, Profile] = {}
        for distinct_id, steps in changes:
            profile = locked[owner[distinct_id]]
            trial = trait_ops.TraitTarget(
                copy.deepcopy(profile.traits),
                copy.deepcopy(profile.private_traits),
                copy.deepcopy(profile.trait_meta),
            )
            errors: dict[str, str] = {}
            for ops in steps:
                errors = trait_ops.apply_operations(trial, ops, at)
                if errors:
                    break
            if not errors:
                profile.traits, profile.trait_meta = trial.public, trial.meta
                if trial.private is not None:
                    profile.private_traits = trial.private
                profile.updated_at = at
                changed[profile.pk] = profile
            results.append(PeopleResult(profile=profile, errors=errors))
        if changed:
            _profile_traits_write(list(changed.values()))
            if reevaluate_segments:
                hooks.profiles_changed(profile_ids=list(changed))
    return results
