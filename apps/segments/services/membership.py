"""Entering and leaving segments (each stay recorded and emitted once), static members."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.events import services as event_services
from apps.profiles import selectors as profile_selectors
from apps.segments import hooks, selectors
from apps.segments.models import Segment, SegmentKind, SegmentMembership
from cdp.errors import DomainError

ENTERED_EVENT = "segment_entered"


EXITED_EVENT = "segment_exited"


def _enter(segment: Segment, profile_ids: Iterable[uuid.UUID], now: datetime) -> list[Any]:
    """Open a stay for each profile not in the segment yet; returns the new stays' (id,
    profile_id). A stay opened meanwhile by another worker wins (the unique constraint)."""
    wanted = list(profile_ids)
    if not wanted:
        return []
    SegmentMembership.objects.bulk_create(
        [SegmentMembership(segment=segment, profile_id=p, entered_at=now) for p in wanted],
        ignore_conflicts=True,
    )
    return list(
        SegmentMembership.objects.filter(
            segment=segment, profile_id__in=wanted, exited_at__isnull=True, entered_at=now
        ).values_list("id", "profile_id")
    )


def _exit(segment: Segment, profile_ids: Iterable[uuid.UUID], now: datetime) -> list[Any]:
    """Close the current stays of these profiles; returns the closed stays' (id, profile_id)."""
    wanted = list(profile_ids)
    if not wanted:
        return []
    # Locked, so a concurrent exit of the same stay waits and then finds it closed: each exit
    # is reported (and emitted) once.
    closed = list(
        SegmentMembership.objects.select_for_update()
        .filter(segment=segment, profile_id__in=wanted, exited_at__isnull=True)
        .values_list("id", "profile_id")
    )
    SegmentMembership.objects.filter(pk__in=[pk for pk, _ in closed]).update(exited_at=now)
    return closed


def _emit(
    segment: Segment, *, entered: Sequence[Any], exited: Sequence[Any], now: datetime
) -> None:
    """The segment_entered/segment_exited events of these stays, and the member count."""
    if not entered and not exited:
        return
    _emit_bulk(segment, entered=entered, exited=exited, now=now)
    delta = len(entered) - len(exited)
    if delta:
        # After the commit, in a statement of its own: the segment row is not held locked for
        # the rest of a processing transaction (every worker entering people would queue on it).
        transaction.on_commit(partial(_count_add, segment.pk, delta))


def _count_add(segment_id: int, delta: int) -> None:
    Segment.objects.filter(pk=segment_id).update(member_count=F("member_count") + delta)


def _recount(segment_ids: Iterable[int]) -> None:
    for segment in Segment.objects.filter(pk__in=set(segment_ids)):
        segment.member_count = selectors.segment_current_count(segment)
        segment.save(update_fields=["member_count"])


@dataclass(slots=True)
class MembersChange:
    """What a static add/remove did: how many profiles entered or left, which inputs matched
    no profile."""

    changed: int = 0
    unknown: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"changed": self.changed, "unknown": self.unknown}


_live = profile_selectors.profile_ids_live


def _require_static(segment: Segment) -> None:
    if segment.kind != SegmentKind.STATIC:
        raise DomainError(
            f"Segment {segment.key!r} is dynamic: its members follow its filter",
            code="not_static",
        )


def segment_members_add(
    *,
    segment: Segment,
    profile_ids: Iterable[str] = (),
    distinct_ids: Iterable[str] = (),
    emails: Iterable[str] = (),
) -> MembersChange:
    """Add profiles to a static segment (each entry emits segment_entered). Inputs that name
    no profile are reported, not created."""
    _require_static(segment)
    found, unknown = profile_selectors.profiles_resolve(
        profile_ids=profile_ids, distinct_ids=distinct_ids, emails=emails
    )
    return _members_change(segment, found, unknown, remove=False)


def segment_members_remove(
    *,
    segment: Segment,
    profile_ids: Iterable[str] = (),
    distinct_ids: Iterable[str] = (),
    emails: Iterable[str] = (),
) -> MembersChange:
    """Remove profiles from a static segment (each exit emits segment_exited)."""
    _require_static(segment)
    found, unknown = profile_selectors.profiles_resolve(
        profile_ids=profile_ids, distinct_ids=distinct_ids, emails=emails
    )
    return _members_change(segment, found, unknown, remove=True)


class ImportColumn:
    AUTO = "auto"
    DISTINCT_ID = "distinct_id"
    EMAIL = "email"
    CHOICES = (
        (AUTO, "Detect: a distinct id, else (with an @) an email"),
        (DISTINCT_ID, "Distinct ids"),
        (EMAIL, "Emails"),
    )


def segment_members_import(
    *,
    segment: Segment,
    values: Sequence[str],
    column: str = ImportColumn.AUTO,
    remove: bool = False,
) -> MembersChange:
    """Add (or remove) the profiles a list of distinct ids or emails names: an uploaded CSV
    column. With `auto`, a value is a distinct id, or else, when it has an @, an email."""
    _require_static(segment)
    if column == ImportColumn.EMAIL:
        found, unknown = profile_selectors.profiles_resolve(emails=values)
    else:
        found, unknown = profile_selectors.profiles_resolve(distinct_ids=values)
        if column == ImportColumn.AUTO:
            mails = [v for v in unknown if "@" in v]
            by_email, still = profile_selectors.profiles_resolve(emails=mails)
            found |= by_email
            unknown = [v for v in unknown if "@" not in v] + still
    return _members_change(segment, found, unknown, remove=remove)


def _members_change(
    segment: Segment, found: set[uuid.UUID], unknown: list[str], *, remove: bool
) -> MembersChange:
    now = timezone.now()
    with transaction.atomic():
        if remove:
            exited = _exit(segment, sorted(found), now)
            _emit(segment, entered=[], exited=exited, now=now)
            return MembersChange(changed=len(exited), unknown=unknown)
        entered = _enter(segment, sorted(found), now)
        _emit(segment, entered=entered, exited=[], now=now)
        return MembersChange(changed=len(entered), unknown=unknown)


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _emit_bulk(
    segment: Segment, *, entered: Sequence[Any], exited: Sequence[Any], now: datetime
) -> None:
    """The segment_entered/segment_exited events of these stays (bulk), without touching the
    member count (the recompute sets it exactly). The message id is the stay's, so a retried
    emission stores nothing twice. The apps above hear of the stays through
    apps.segments.hooks, in this transaction."""
    hooks.membership_changed(
        segment_key=segment.key,
        segment_name=segment.name,
        entered=list(entered),
        exited=list(exited),
    )
    people = selectors.primary_distinct_ids([p for _, p in (*entered, *exited)])
    properties = {"segment": segment.key, "segment_name": segment.name}
    event_services.events_emit_many(
        emissions=[
            event_services.Emission(
                distinct_id=people[profile_id],
                event_name=name,
                properties=properties,
                message_id=f"{name}:{stay}",
                timestamp=now,
            )
            for name, stays in ((ENTERED_EVENT, entered), (EXITED_EVENT, exited))
            for stay, profile_id in stays
            if profile_id in people
        ]
    )
