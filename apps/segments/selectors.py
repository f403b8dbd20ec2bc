"""Reads on segments: lookups, current members, a profile's segments, previews, CSV rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Case, Exists, IntegerField, OuterRef, QuerySet, Value, When

from apps.profiles.models import Identity, IdentityKind, Profile
from apps.segments.filtering import parse_filter, profiles_matching
from apps.segments.models import Segment, SegmentKind, SegmentMembership
from cdp.errors import DomainError

PREVIEW_SAMPLE = 10
CSV_CHUNK = 2000


def segment_list() -> QuerySet[Segment]:
    return Segment.objects.all()


def segment_get(key: str) -> Segment:
    segment = Segment.objects.filter(key=key).first()
    if segment is None:
        raise DomainError(f"No segment with key {key!r}", code="not_found", status_code=404)
    return segment


def segment_dynamic_list() -> QuerySet[Segment]:
    return Segment.objects.filter(kind=SegmentKind.DYNAMIC, filter__isnull=False)


def segment_member_list(segment: Segment) -> QuerySet[SegmentMembership]:
    """The current members (one row per profile), with their profiles."""
    return SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).select_related(
        "profile"
    )


def segment_member_ids_sql(key: str) -> QuerySet[SegmentMembership, Any]:
    """The ids of the current members of segment `key`, as a subquery (`in_segment` in SQL).
    An unknown key raises LookupError (the filter language reports it on the leaf)."""
    if not Segment.objects.filter(key=key).exists():
        raise LookupError(key)
    return SegmentMembership.objects.filter(segment__key=key, exited_at__isnull=True).values_list(
        "profile_id", flat=True
    )


def segment_has_member(key: str, profile: Profile) -> bool | None:
    """Whether the profile is a current member of segment `key` (`in_segment` in memory);
    None for an unknown key. One query."""
    current = SegmentMembership.objects.filter(
        segment=OuterRef("pk"), profile_id=profile.pk, exited_at__isnull=True
    )
    return (
        Segment.objects.filter(key=key)
        .annotate(member=Exists(current))
        .values_list("member", flat=True)
        .first()
    )


def segment_current_count(segment: Segment) -> int:
    return SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).count()


def profile_segments(profile: Profile) -> list[dict[str, Any]]:
    """The segments a profile is in now, for the profile endpoint."""
    rows = (
        SegmentMembership.objects.filter(profile=profile, exited_at__isnull=True)
        .select_related("segment")
        .order_by("segment__key")
    )
    return [
        {
            "key": m.segment.key,
            "name": m.segment.name,
            "kind": m.segment.kind,
            "entered_at": m.entered_at.isoformat(),
        }
        for m in rows
    ]


def primary_distinct_ids(profile_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """One distinct_id per profile, the one emitted events are sent as: its user id when it
    has one, else its oldest id."""
    wanted = list(profile_ids)
    found: dict[uuid.UUID, str] = {}
    for start in range(0, len(wanted), CSV_CHUNK):
        rows = (
            Identity.objects.filter(profile_id__in=wanted[start : start + CSV_CHUNK])
            .annotate(
                rank=Case(
                    When(kind=IdentityKind.USER_ID, then=Value(0)),
                    default=Value(1),
                    output_field=IntegerField(),
                )
            )
            .order_by("profile_id", "rank", "created_at", "id")
            .values_list("profile_id", "distinct_id")
        )
        for profile_id, distinct_id in rows:
            found.setdefault(profile_id, distinct_id)
    return found


@dataclass(slots=True)
class Preview:
    count: int
    sample: list[Profile]


def segment_preview(tree: dict[str, Any], *, sample_size: int = PREVIEW_SAMPLE) -> Preview:
    """How many live profiles a (validated) filter matches now, and a sample of them."""
    matching = profiles_matching(
        parse_filter(tree, scope="profile"), queryset=Profile.objects.filter(merged_into=None)
    )
    return Preview(
        count=matching.count(), sample=list(matching.order_by("-last_seen", "id")[:sample_size])
    )


def segment_members_csv_rows(segment: Segment, *, with_email: bool) -> Iterator[list[str]]:
    """The header, then one row per current member: profile id, its distinct ids, when it
    entered (and its email, for users allowed to see private traits). Read in chunks, so an
    export of any size holds one chunk in memory."""
    yield ["profile_id", "distinct_ids", "entered_at", *(["email"] if with_email else [])]
    rows = (
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True)
        .order_by("id")
        .values_list("profile_id", "entered_at", "profile__private_traits", "profile__traits")
    )
    chunk: list[tuple[Any, ...]] = []
    for row in rows.iterator(chunk_size=CSV_CHUNK):
        chunk.append(row)
        if len(chunk) == CSV_CHUNK:
            yield from _csv_chunk(chunk, with_email)
            chunk = []
    yield from _csv_chunk(chunk, with_email)


def _csv_chunk(chunk: list[tuple[Any, ...]], with_email: bool) -> Iterator[list[str]]:
    if not chunk:
        return
    ids: dict[Any, list[str]] = {}
    for profile_id, distinct_id in (
        Identity.objects.filter(profile_id__in=[row[0] for row in chunk])
        .order_by("profile_id", "created_at", "id")
        .values_list("profile_id", "distinct_id")
    ):
        ids.setdefault(profile_id, []).append(distinct_id)
    for profile_id, entered_at, private_traits, traits in chunk:
        row = [str(profile_id), " ".join(ids.get(profile_id, [])), entered_at.isoformat()]
        if with_email:
            row.append(_email_of(private_traits) or _email_of(traits))
        yield row


def _email_of(traits: Any) -> str:
    value = traits.get("email") if isinstance(traits, dict) else None
    return value if isinstance(value, str) else ""
