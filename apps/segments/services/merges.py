"""Memberships through profile merges and unmerges."""

from __future__ import annotations

from django.utils import timezone

from apps.profiles.models import ProfileMerge
from apps.segments.models import SegmentMembership
from apps.segments.services.membership import _recount
from apps.segments.services.realtime import segments_reevaluate_later


def segments_profiles_merged(*, merge: ProfileMerge) -> None:
    """A merge carries the merged profile's stays to the survivor (the union: a stay the
    survivor already has is kept, with its own entry time), and ends them on the merged
    profile. No events: the person was already in. Dynamic segments are then re-evaluated for
    the survivor, after the commit."""
    now = timezone.now()
    moving = list(
        SegmentMembership.objects.filter(profile_id=merge.merged_id, exited_at__isnull=True)
    )
    if moving:
        has = set(
            SegmentMembership.objects.filter(
                profile_id=merge.survivor_id, exited_at__isnull=True
            ).values_list("segment_id", flat=True)
        )
        SegmentMembership.objects.filter(pk__in=[m.pk for m in moving]).update(
            exited_at=now, merge=merge
        )
        SegmentMembership.objects.bulk_create(
            [
                SegmentMembership(
                    segment_id=m.segment_id,
                    profile_id=merge.survivor_id,
                    entered_at=m.entered_at,
                    merge=merge,
                )
                for m in moving
                if m.segment_id not in has
            ]
        )
        _recount(m.segment_id for m in moving if m.segment_id in has)
    segments_reevaluate_later(profile_ids=[merge.survivor_id])


def segments_profiles_unmerged(*, merge: ProfileMerge) -> None:
    """An unmerge undoes what the merge did to memberships: the survivor's stays carried by
    it end, the merged profile's stays it ended resume (with their entry times). Both
    profiles' dynamic segments are then re-evaluated, after the commit."""
    now = timezone.now()
    carried = SegmentMembership.objects.filter(
        profile_id=merge.survivor_id, merge=merge, exited_at__isnull=True
    )
    touched = set(carried.values_list("segment_id", flat=True))
    carried.update(exited_at=now)
    ended = list(
        SegmentMembership.objects.filter(profile_id=merge.merged_id, merge=merge).exclude(
            exited_at__isnull=True
        )
    )
    SegmentMembership.objects.bulk_create(
        [
            SegmentMembership(
                segment_id=m.segment_id, profile_id=merge.merged_id, entered_at=m.entered_at
            )
            for m in ended
        ],
        ignore_conflicts=True,
    )
    _recount(touched | {m.segment_id for m in ended})
    segments_reevaluate_later(profile_ids=[merge.survivor_id, merge.merged_id])
