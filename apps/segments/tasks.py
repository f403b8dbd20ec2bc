"""Celery tasks for segments: thin wrappers that take ids and call a service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.segments import services
from apps.segments.models import Segment, SegmentKind
from cdp.tasks import transient_retry


@shared_task(**transient_retry(5))
def recompute_segments() -> list[dict[str, Any]]:
    """Periodic (beat): keep time-based conditions true, set-wise, for every dynamic segment."""
    return [r.as_dict() for r in services.segments_recompute_all()]


@shared_task(**transient_retry(5))
def recompute_segment(segment_id: int) -> dict[str, Any] | None:
    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is None or segment.kind != SegmentKind.DYNAMIC or not segment.filter:
        return None  # deleted, or made static, since it was queued
    return services.segment_recompute(segment=segment).as_dict()


@shared_task(**transient_retry(5))
def reevaluate_profiles(profile_ids: list[str]) -> None:
    services.segments_reevaluate(profile_ids=profile_ids)


@shared_task(**transient_retry(5))
def reevaluate_group_members(group_id: int) -> int | None:
    """After a group's own properties changed: its members, for the segments reading its type."""
    return services.segments_reevaluate_group(group_id=group_id)
