"""Writes on profiles: identity resolution, identify, alias, merges and unmerges, people
operations, groups, and the profile step of event processing.

Each state change with side effects (history row, merge record, moved identities) goes through
one function here, so no caller can forget half of it.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from apps.profiles import traits as trait_ops
from apps.profiles.models import (
    Group,
    GroupMembership,
    GroupType,
    Identity,
    IdentityKind,
    MergeConflict,
    MergeTrigger,
    Profile,
    ProfileHistory,
    ProfileMerge,
)
from cdp.errors import DomainError

logger = logging.getLogger(__name__)

MAX_POINTER_HOPS = 20


# --- reading through merge pointers -------------------------------------------------------------


def profile_follow(profile: Profile) -> Profile:
    """The surviving profile this one was merged into (itself when it wasn't)."""
    hops = 0
    while profile.merged_into_id is not None and hops < MAX_POINTER_HOPS:
        profile = Profile.objects.get(pk=profile.merged_into_id)
        hops += 1
    return profile


def _lock_profiles(*profile_ids: uuid.UUID) -> dict[uuid.UUID, Profile]:
    """Row-lock the profiles (in id order, so two merges can't deadlock)."""
    rows = Profile.objects.select_for_update().filter(pk__in=set(profile_ids)).order_by("pk")
    return {p.pk: p for p in rows}


def _history(
    profile: Profile, action: str, detail: dict[str, Any], actor: str = "", user: Any = None
) -> None:
    ProfileHistory.objects.create(
        profile=profile, action=action, detail=detail, actor=actor[:255], user=user
    )


def _segments() -> Any:
    """The segments services (imported on use: segments build on profiles)."""
    from apps.segments import services

    return services


# --- identities ---------------------------------------------------------------------------------


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


# --- merge and unmerge --------------------------------------------------------------------------


def _snapshot(profile: Profile) -> dict[str, Any]:
    return {
        "traits": profile.traits,
        "private_traits": profile.private_traits,
        "trait_meta": profile.trait_meta,
        "first_seen": profile.first_seen.isoformat() if profile.first_seen else None,
        "last_seen": profile.last_seen.isoformat() if profile.last_seen else None,
        "event_count": profile.event_count,
        "session_count": profile.session_count,
        "identified": profile.identified,
    }


def _group_ids(profile: Profile) -> list[int]:
    return sorted(
        GroupMembership.objects.filter(profile=profile).values_list("group_id", flat=True)
    )


def _target(profile: Profile) -> trait_ops.TraitTarget:
    return trait_ops.TraitTarget(profile.traits, profile.private_traits, profile.trait_meta)


def profile_merge(
    *,
    survivor: Profile,
    merged: Profile,
    trigger: str,
    triggered_by: str = "",
    user: Any = None,
) -> ProfileMerge | None:
    """Merge `merged` into `survivor`: identities and group memberships move, traits merge
    (last write wins, set_once keeps the oldest), first/last seen widen, counts add up, and
    `merged` stays as a pointer. Costs O(identities + memberships), never O(events).
    Idempotent: merging profiles that are already one returns None."""
    with transaction.atomic():
        survivor_id = profile_follow(survivor).pk
        merged_id = profile_follow(merged).pk
        if survivor_id == merged_id:
            return None
        locked = _lock_profiles(survivor_id, merged_id)
        keep, gone = locked[survivor_id], locked[merged_id]
        if keep.merged_into_id or gone.merged_into_id:  # merged meanwhile: follow again
            return profile_merge(
                survivor=keep, merged=gone, trigger=trigger, triggered_by=triggered_by, user=user
            )
        # Both sides as they were, so an unmerge can give each its own traits and groups back.
        snapshot = {
            **_snapshot(gone),
            "groups": _group_ids(gone),
            "survivor": {**copy.deepcopy(_snapshot(keep)), "groups": _group_ids(keep)},
        }
        moved = list(Identity.objects.filter(profile=gone).values_list("distinct_id", flat=True))
        Identity.objects.filter(profile=gone).update(profile=keep)
        already = GroupMembership.objects.filter(profile=keep).values_list("group_id", flat=True)
        GroupMembership.objects.filter(profile=gone).exclude(group_id__in=already).update(
            profile=keep
        )
        GroupMembership.objects.filter(profile=gone).delete()

        trait_ops.merge_into(_target(keep), _target(gone))
        keep.first_seen = _min_time(keep.first_seen, gone.first_seen)
        keep.last_seen = _max_time(keep.last_seen, gone.last_seen)
        keep.event_count += gone.event_count
        keep.session_count += gone.session_count
        keep.identified = keep.identified or gone.identified
        keep.save()
        gone.merged_into = keep
        gone.save(update_fields=["merged_into", "updated_at"])
        Profile.objects.filter(merged_into=gone).update(merged_into=keep)  # chains stay flat

        merge = ProfileMerge.objects.create(
            survivor=keep,
            merged=gone,
            trigger=trigger,
            triggered_by=triggered_by[:255],
            moved_distinct_ids=moved,
            merged_snapshot=snapshot,
        )
        detail = {
            "merge": merge.pk,
            "other": str(gone.pk),
            "distinct_ids": moved,
            "trigger": trigger,
        }
        _history(keep, "merged_in", detail, triggered_by, user)
        _history(gone, "merged_into", {**detail, "other": str(keep.pk)}, triggered_by, user)
        _segments().segments_profiles_merged(merge=merge)
        return merge


def _min_time(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(t for t in (a, b) if t) if (a or b) else None


def _max_time(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(t for t in (a, b) if t) if (a or b) else None


def profile_unmerge(*, merge: ProfileMerge, actor: str = "", user: Any = None) -> Profile:
    """Undo a merge: the merged profile gets its identities back and is live again, with the
    traits it had. Both profiles' stats are recomputed from their events."""
    with transaction.atomic():
        merge = ProfileMerge.objects.select_for_update().get(pk=merge.pk)
        if merge.undone_at is not None:
            raise DomainError("This merge was already undone", code="already_undone")
        locked = _lock_profiles(merge.survivor_id, merge.merged_id)
        keep, gone = locked[merge.survivor_id], locked[merge.merged_id]
        if gone.merged_into_id != keep.pk:
            raise DomainError(
                "The surviving profile was merged again since: undo that merge first",
                code="merge_not_undoable",
            )
        Identity.objects.filter(profile=keep, distinct_id__in=merge.moved_distinct_ids).update(
            profile=gone
        )
        # Profiles merged into `gone` before this merge point at `gone` again.
        Profile.objects.filter(
            merged_into=keep, merges_out__survivor=gone, merges_out__undone_at__isnull=True
        ).update(merged_into=gone)
        snap = merge.merged_snapshot
        gone.traits = snap.get("traits", {})
        gone.private_traits = snap.get("private_traits", {})
        gone.trait_meta = snap.get("trait_meta", {})
        gone.identified = Identity.objects.filter(profile=gone, kind=IdentityKind.USER_ID).exists()
        gone.merged_into = None
        gone.save()
        before = snap.get("survivor")
        if before is not None:
            trait_ops.unmerge_from(
                _target(keep), before=_snapshot_target(before), taken=_target(gone)
            )
            _groups_split(keep, gone, kept=before.get("groups", []), moved=snap.get("groups", []))
        keep.identified = Identity.objects.filter(profile=keep, kind=IdentityKind.USER_ID).exists()
        keep.save(
            update_fields=["identified", "traits", "private_traits", "trait_meta", "updated_at"]
        )
        profile_recount(profile=keep)
        profile_recount(profile=gone)
        merge.undone_at = timezone.now()
        merge.undone_by = actor[:255]
        merge.save(update_fields=["undone_at", "undone_by"])
        detail = {"merge": merge.pk, "distinct_ids": merge.moved_distinct_ids}
        _history(keep, "unmerged", {**detail, "other": str(gone.pk)}, actor, user)
        _history(gone, "unmerged", {**detail, "other": str(keep.pk)}, actor, user)
        _segments().segments_profiles_unmerged(merge=merge)
        return gone


def _snapshot_target(snap: dict[str, Any]) -> trait_ops.TraitTarget:
    return trait_ops.TraitTarget(
        snap.get("traits", {}), snap.get("private_traits", {}), snap.get("trait_meta", {})
    )


def _groups_split(keep: Profile, gone: Profile, *, kept: list[int], moved: list[int]) -> None:
    """Give `gone` its groups back; `keep` leaves those it was only in through the merge."""
    GroupMembership.objects.bulk_create(
        [GroupMembership(profile=gone, group_id=g) for g in moved], ignore_conflicts=True
    )
    GroupMembership.objects.filter(profile=keep, group_id__in=set(moved) - set(kept)).delete()


def profile_recount(*, profile: Profile) -> Profile:
    """Recompute first/last seen and the counts from the events of the profile's identities."""
    from apps.events import selectors as event_selectors

    ids = list(Identity.objects.filter(profile=profile).values_list("distinct_id", flat=True))
    stats = event_selectors.event_stats_for(distinct_ids=ids)
    profile.first_seen = stats["first_seen"]
    profile.last_seen = stats["last_seen"]
    profile.event_count = stats["event_count"]
    profile.session_count = stats["session_count"]
    profile.save(
        update_fields=["first_seen", "last_seen", "event_count", "session_count", "updated_at"]
    )
    return profile


def _refuse(a: Profile, b: Profile, trigger: str, triggered_by: str, reason: str) -> None:
    conflict = MergeConflict.objects.create(
        profile=a, other_profile=b, trigger=trigger, triggered_by=triggered_by[:255], reason=reason
    )
    logger.warning("Merge refused (%s): %s and %s: %s", trigger, a.pk, b.pk, reason)
    _history(
        a,
        "merge_refused",
        {"conflict": conflict.pk, "other": str(b.pk), "reason": reason},
        triggered_by,
    )


def _known_ids(profile: Profile) -> list[str]:
    return list(
        Identity.objects.filter(profile=profile, kind=IdentityKind.USER_ID).values_list(
            "distinct_id", flat=True
        )
    )


# --- identify and alias -------------------------------------------------------------------------


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


# --- people operations --------------------------------------------------------------------------


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
            _segments().segments_reevaluate_later(profile_ids=[profile.pk])
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
                _segments().segments_reevaluate_later(profile_ids=list(changed))
    return results


_TRAITS_FIELDS = ("traits", "private_traits", "trait_meta", "updated_at")


def _profile_traits_write(profiles: Sequence[Profile]) -> None:
    """Write the traits of many profiles in one statement. On PostgreSQL the rows go as one
    JSON document (jsonb_to_recordset): arrays of JSON texts are escaped element by element by
    the client, which cost more than the update."""
    if connection.vendor != "postgresql":
        Profile.objects.bulk_update(profiles, list(_TRAITS_FIELDS))
        return
    table = connection.ops.quote_name(Profile._meta.db_table)
    rows = [
        {
            "id": str(p.pk),
            "traits": p.traits,
            "private_traits": p.private_traits,
            "trait_meta": p.trait_meta,
            "updated_at": p.updated_at,
        }
        for p in profiles
    ]
    try:
        document = orjson.dumps(rows, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:  # integers beyond 64 bits: what a model save would write
        document = json.dumps(rows, cls=DjangoJSONEncoder)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS p SET traits = u.traits, private_traits = u.private_traits, "  # noqa: S608
            "trait_meta = u.trait_meta, updated_at = u.updated_at "
            "FROM jsonb_to_recordset(%s::jsonb) AS u(id uuid, traits jsonb, "
            "private_traits jsonb, trait_meta jsonb, updated_at timestamptz) WHERE p.id = u.id",
            [document],
        )


# --- groups -------------------------------------------------------------------------------------


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
            _segments().segments_reevaluate_later(profile_ids=[profile.pk])
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
            _segments().segments_group_changed_later(group_id=group.pk)
        return group, errors


def _memberships_add(pairs: Iterable[tuple[Profile, Group]]) -> None:
    GroupMembership.objects.bulk_create(
        [GroupMembership(profile=p, group=g) for p, g in pairs], ignore_conflicts=True
    )


# --- the profile step of event processing -------------------------------------------------------

IDENTIFY_EVENT = "$identify"
ALIAS_EVENT = "$create_alias"
SET_EVENT = "$set"
GROUP_EVENT = "$group"


def _props(event: Any) -> dict[str, Any]:
    return event.properties if isinstance(event.properties, dict) else {}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _on_identify(event: Any) -> None:
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


def _on_alias(event: Any) -> None:
    alias = _props(event).get("alias")
    if isinstance(alias, str) and alias:
        profile_alias(
            distinct_id=event.distinct_id, alias=alias, triggered_by=f"event {event.message_id}"
        )


def _on_set(event: Any) -> None:
    """Traits of a person who is not identified (Segment identify without userId)."""
    props = _props(event)
    ops = {"set": _dict(props.get("$set")), "set_once": _dict(props.get("$set_once"))}
    people_apply(
        distinct_id=event.distinct_id, ops=ops, at=event.timestamp, reevaluate_segments=False
    )


def _on_group(event: Any) -> None:
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
IDENTITY_EVENT_HANDLERS: dict[str, Callable[[Any], None]] = {
    IDENTIFY_EVENT: _on_identify,
    ALIAS_EVENT: _on_alias,
    SET_EVENT: _on_set,
    GROUP_EVENT: _on_group,
}


@dataclass(slots=True)
class _Stats:
    first_seen: datetime
    last_seen: datetime
    events: int = 0
    sessions: int = 0


def profile_lock_names(events: Sequence[Any]) -> set[str]:
    """Lock names for the identity work of a batch: each distinct_id it touches, and each
    identifier its identification points will look up (two people's events carrying the same
    email must not both create its identity)."""
    from apps.profiles.identification import identifiers_of, points_enabled

    ids = set(identifiers_of(events, points_enabled()))
    for event in events:
        ids.add(event.distinct_id)
        props = event.properties if isinstance(event.properties, dict) else {}
        for key in ("$anonymous_id", "alias"):
            if isinstance(props.get(key), str):
                ids.add(props[key])
    return identity_lock_names(ids)


def identity_lock_names(distinct_ids: Iterable[str]) -> set[str]:
    """The lock name of each distinct_id or identifier ("email:ann@example.com"): what
    processing holds while it resolves, creates or merges their identities."""
    return {f"d:{distinct_id}" for distinct_id in distinct_ids}


def profiles_process_events(
    *, events: Sequence[Any], new_session_people: Iterable[str], points: Sequence[Any] = ()
) -> dict[str, Profile]:
    """Resolve each event's person (creating profiles for new ids), apply identify/alias
    events and identification points in time order, join the groups events carry, and update
    profile stats. Runs inside processing's transaction, under its per-distinct_id locks.
    Returns each distinct_id's profile (as resolved: its stats may be older than the row's)."""
    ordered = sorted(events, key=lambda e: e.timestamp)
    for event in ordered:
        handler = IDENTITY_EVENT_HANDLERS.get(event.event_name)
        if handler is not None:
            handler(event)

    profiles = identities_resolve({e.distinct_id for e in ordered})
    if points:
        from apps.profiles.identification import identification_points_apply

        identification_points_apply(events=ordered, profiles=profiles, points=points)
        profiles = identities_resolve({e.distinct_id for e in ordered})

    stats: dict[uuid.UUID, _Stats] = {}
    for event in ordered:
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


_STATS_FIELDS = ("event_count", "session_count", "first_seen", "last_seen", "updated_at")


def _profile_stats_write(profiles: Sequence[Profile]) -> None:
    """Write the stats of many profiles in one statement (PostgreSQL) or one prepared statement
    run per row (SQLite): Django's bulk_update builds a CASE per column and row, which cost
    most of a 1,000-event processing task."""
    table = connection.ops.quote_name(Profile._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} AS p SET event_count = u.ec, session_count = u.sc, "  # noqa: S608
                "first_seen = u.fs, last_seen = u.ls, updated_at = u.ua "
                "FROM unnest(%s::uuid[], %s::bigint[], %s::bigint[], %s::timestamptz[], "
                "%s::timestamptz[], %s::timestamptz[]) AS u(id, ec, sc, fs, ls, ua) "
                "WHERE p.id = u.id",
                [
                    [p.pk for p in profiles],
                    *([getattr(p, name) for p in profiles] for name in _STATS_FIELDS),
                ],
            )
            return
        pk_field = Profile._meta.pk
        assert pk_field is not None
        when = connection.ops.adapt_datetimefield_value
        cursor.executemany(
            f"UPDATE {table} SET event_count = %s, session_count = %s, first_seen = %s, "  # noqa: S608
            "last_seen = %s, updated_at = %s WHERE id = %s",
            [
                [
                    p.event_count,
                    p.session_count,
                    when(p.first_seen),
                    when(p.last_seen),
                    when(p.updated_at),
                    pk_field.get_db_prep_value(p.pk, connection),
                ]
                for p in profiles
            ],
        )


def _event_groups_join(events: Sequence[Any], profiles: dict[str, Profile]) -> None:
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
