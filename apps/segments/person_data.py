"""A person's segment memberships, for privacy requests (registered in SegmentsConfig.ready)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from apps.consents.privacy.hooks import Person, PersonDataHandler, delete_in_batches
from apps.segments import selectors
from apps.segments.models import Segment, SegmentMembership

TABLE = "segment_memberships"


def _rows(person: Person) -> Iterator[dict[str, Any]]:
    memberships = (
        SegmentMembership.objects.filter(profile_id__in=person.profile_ids)
        .select_related("segment")
        .order_by("entered_at", "pk")
    )
    for m in memberships:
        yield {
            "segment": m.segment.key,
            "segment_name": m.segment.name,
            "profile_id": m.profile_id,
            "entered_at": m.entered_at,
            "exited_at": m.exited_at,
        }


def segments_person_export(*, person: Person) -> dict[str, Iterable[dict[str, Any]]]:
    return {TABLE: _rows(person)}


def segments_person_erase(
    *, person: Person, progress: Callable[[str, int], None]
) -> dict[str, int]:
    """Delete the person's stays (current and past), then recount the segments they were in."""
    memberships = SegmentMembership.objects.filter(profile_id__in=person.profile_ids)
    segment_ids = set(memberships.values_list("segment_id", flat=True).distinct())
    deleted = 0
    for per_model in delete_in_batches(memberships):
        n = per_model.get(SegmentMembership._meta.label, 0)
        deleted += n
        progress(TABLE, n)
    for segment in Segment.objects.filter(pk__in=segment_ids):
        segment.member_count = selectors.segment_current_count(segment)
        segment.save(update_fields=["member_count"])
    return {TABLE: deleted}


def segments_person_count(*, person: Person) -> dict[str, int]:
    return {TABLE: SegmentMembership.objects.filter(profile_id__in=person.profile_ids).count()}


HANDLER = PersonDataHandler(
    app_label="segments",
    export=segments_person_export,
    erase=segments_person_erase,
    count=segments_person_count,
)
