"""The set-wise recompute of dynamic segments (what the periodic task runs)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.profiles.models import Profile
from apps.segments import selectors
from apps.segments.filtering import (
    profiles_matching,
)
from apps.segments.models import Segment, SegmentKind, SegmentMembership
from apps.segments.services.definitions import _dynamic_segments, _parsed
from apps.segments.services.membership import _emit_bulk, _recount, _uuid
from cdp.errors import DomainError

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class RecomputeResult:
    key: str
    entered: int
    exited: int
    members: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "entered": self.entered,
            "exited": self.exited,
            "members": self.members,
        }


_MEMBERSHIP = SegmentMembership._meta.db_table


_SET = "segments_recompute_set"


_ENTER_SQL = f"""
INSERT INTO {_MEMBERSHIP} (segment_id, profile_id, entered_at)
SELECT %s, s.profile_id, %s FROM {_SET} s
WHERE NOT EXISTS (
    SELECT 1 FROM {_MEMBERSHIP} c
    WHERE c.segment_id = %s AND c.profile_id = s.profile_id
      AND (c.exited_at IS NULL OR c.exited_at >= %s)
)
ON CONFLICT DO NOTHING
RETURNING id, profile_id
"""  # noqa: S608 - table names are constants


_EXIT_SQL = f"""
UPDATE {_MEMBERSHIP} SET exited_at = %s
WHERE segment_id = %s AND exited_at IS NULL AND entered_at <= %s
  AND NOT EXISTS (SELECT 1 FROM {_SET} s WHERE s.profile_id = {_MEMBERSHIP}.profile_id)
RETURNING id, profile_id
"""  # noqa: S608 - table names are constants


def segment_recompute(*, segment: Segment, now: datetime | None = None) -> RecomputeResult:
    """Bring a dynamic segment's membership up to date, set-wise: one statement computes the
    member set (the filter compiled to SQL) into a temporary table, one INSERT ... SELECT
    opens the stays of profiles that entered, one UPDATE closes those of profiles that left;
    the entries and exits are emitted in bulk. Nothing loops over profiles in Python.

    Stays opened or closed in real time since `now` are left alone: they are newer than the
    set computed here."""
    if segment.kind != SegmentKind.DYNAMIC or not segment.filter:
        raise DomainError(
            f"Segment {segment.key!r} is static: nothing to compute", code="not_dynamic"
        )
    now = now or timezone.now()
    matching = (
        profiles_matching(
            _parsed(segment), now=now, queryset=Profile.objects.filter(merged_into__isnull=True)
        )
        .order_by()
        .values("id")
    )
    set_sql, set_params = matching.query.sql_with_params()
    with transaction.atomic():
        # One recompute of a segment at a time; real-time processing does not take this lock.
        segment = Segment.objects.select_for_update().get(pk=segment.pk)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # JIT compilation costs more (tens of ms) than these index-driven statements
                # save: off for this transaction only.
                cursor.execute("SET LOCAL jit = off")
            cursor.execute(f"DROP TABLE IF EXISTS {_SET}")
            cursor.execute(
                # The set's SQL is the ORM's, with its parameters passed separately.
                f"CREATE TEMPORARY TABLE {_SET} AS SELECT m.id AS profile_id FROM ({set_sql}) m",  # noqa: S608
                set_params,
            )
            # The exit's anti join probes the set per current member: an index, and (PostgreSQL)
            # statistics, so it never scans the set once per member.
            cursor.execute(f"CREATE INDEX {_SET}_idx ON {_SET} (profile_id)")
            if connection.vendor == "postgresql":
                cursor.execute(f"ANALYZE {_SET}")
            at = connection.ops.adapt_datetimefield_value(now)
            cursor.execute(_ENTER_SQL, [segment.pk, at, segment.pk, at])
            entered = [(pk, _uuid(p)) for pk, p in cursor.fetchall()]
            cursor.execute(_EXIT_SQL, [at, segment.pk, at])
            exited = [(pk, _uuid(p)) for pk, p in cursor.fetchall()]
            cursor.execute(f"DROP TABLE {_SET}")
        segment.member_count = selectors.segment_current_count(segment)
        segment.last_computed_at = now
        segment.save(update_fields=["member_count", "last_computed_at"])
        _emit_bulk(segment, entered=entered, exited=exited, now=now)
    return RecomputeResult(
        key=segment.key, entered=len(entered), exited=len(exited), members=segment.member_count
    )


def segments_recompute_all(
    *, keys: Sequence[str] = (), now: datetime | None = None
) -> list[RecomputeResult]:
    """Recompute the dynamic segments (those of `keys`, or all), referenced ones first, and
    refresh the member counts of static ones. A segment whose filter fails is logged and
    skipped; the others go on."""
    query = selectors.segment_dynamic_list()
    if keys:
        query = query.filter(key__in=keys)
    results = []
    for segment in _dynamic_segments(query):
        try:
            results.append(segment_recompute(segment=segment, now=now))
        except DomainError:
            logger.exception("Segment %s could not be recomputed", segment.key)
    if not keys:
        _recount(Segment.objects.filter(kind=SegmentKind.STATIC).values_list("pk", flat=True))
    return results
