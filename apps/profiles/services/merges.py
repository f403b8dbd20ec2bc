"""Merging and unmerging two profiles, and recounting a profile's stats."""

from __future__ import annotations

import copy
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.events import selectors as event_selectors
from apps.profiles import hooks
from apps.profiles import traits as trait_ops
from apps.profiles.models import (
    GroupMembership,
    Identity,
    IdentityKind,
    MergeConflict,
    Profile,
    ProfileMerge,
)
from apps.profiles.selectors import profile_follow
from apps.profiles.services.storage import _history, _lock_profiles, _max_time, _min_time, _target
from cdp.errors import DomainError

logger = logging.getLogger(__name__)


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
        hooks.profiles_merged(merge=merge)
        return merge


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
        hooks.profiles_unmerged(merge=merge)
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
