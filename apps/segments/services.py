"""Writes on segments: create/update/delete, static members, real-time re-evaluation after
events and profile changes, the set-wise recompute, and memberships through merges.

Every enter and exit goes through `_enter`/`_exit` and `_emit`, so each one records the stay
and emits its `segment_entered`/`segment_exited` event (idempotent: the message id is the
stay's id), and no caller can do half of it.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from apps.events import services as event_services
from apps.profiles import selectors as profile_selectors
from apps.profiles import services as profile_services
from apps.profiles.models import GroupMembership, Profile, ProfileMerge
from apps.segments import selectors
from apps.segments.filtering import (
    Filter,
    FilterError,
    evaluate,
    parse_filter,
    parse_text,
    profiles_matching,
)
from apps.segments.models import Segment, SegmentKind, SegmentMembership
from cdp.errors import DomainError
from cdp.tasks import enqueue_on_commit

logger = logging.getLogger(__name__)

ENTERED_EVENT = "segment_entered"
EXITED_EVENT = "segment_exited"
# Profile fields every processed event changes.
STAT_FIELDS = frozenset({"first_seen", "last_seen", "event_count", "session_count"})
# The segments tasks, queued by name (apps.segments.tasks imports these services).
RECOMPUTE_SEGMENT_TASK = "apps.segments.tasks.recompute_segment"
REEVALUATE_PROFILES_TASK = "apps.segments.tasks.reevaluate_profiles"
REEVALUATE_GROUP_MEMBERS_TASK = "apps.segments.tasks.reevaluate_group_members"
UNSET: Any = object()


# --- filters ------------------------------------------------------------------------------------


def segment_filter_parse(
    *, filter: Any = None, filter_text: str | None = None, key: str | None = None
) -> dict[str, Any]:
    """The validated tree of a filter given as JSON or in the text form (not both). Errors
    name the input and the leaf at fault. `key`: the segment it is for, which its
    `in_segment` leaves must not lead back to."""
    if filter is not None and filter_text is not None:
        raise DomainError("Send the filter as JSON or as text, not both", field="filter_text")
    name = "filter_text" if filter_text is not None else "filter"
    try:
        tree = parse_text(filter_text) if filter_text is not None else filter
        if tree is None:
            raise DomainError("A dynamic segment needs a filter", field="filter")
        parsed = parse_filter(tree, scope="profile")
    except FilterError as exc:
        leaf = f"{name}.{exc.leaf}" if exc.leaf else name
        raise DomainError(exc.message, field=leaf, code=exc.code) from None
    _check_segment_references(parsed, key=key, field=name)
    return parsed.tree


def _check_segment_references(parsed: Filter, *, key: str | None, field: str) -> None:
    """`in_segment` leaves name existing segments, and never lead back to this one."""
    keys = set(parsed.references.segments)
    if not keys:
        return
    known = {s.key: s for s in Segment.objects.filter(key__in=keys)}
    missing = sorted(keys - known.keys())
    if missing:
        raise DomainError(f"in_segment: no segment with key {missing[0]!r}", field=field)
    if key is None:
        return
    # Walk what the referenced segments reference in turn: a cycle would never settle.
    seen: set[str] = set()
    todo = list(keys)
    while todo:
        current = todo.pop()
        if current == key:
            raise DomainError(f"in_segment: segment {key!r} would depend on itself", field=field)
        if current in seen:
            continue
        seen.add(current)
        segment = Segment.objects.filter(key=current).first()
        if segment is not None and segment.kind == SegmentKind.DYNAMIC and segment.filter:
            todo.extend(_parsed(segment).references.segments)


_PARSED: dict[tuple[int, Any], Filter] = {}


def _parsed(segment: Segment) -> Filter:
    """The segment's stored filter, parsed once per version (the tree was validated when it
    was saved)."""
    cache_key = (segment.pk, segment.updated_at)
    parsed = _PARSED.get(cache_key)
    if parsed is None:
        if len(_PARSED) > 1000:
            _PARSED.clear()
        parsed = _PARSED[cache_key] = parse_filter(segment.filter, scope="profile")
    return parsed


def _dynamic_segments(segments: Iterable[Segment] | None = None) -> list[Segment]:
    """The dynamic segments whose stored filter parses, referenced ones first. One that
    doesn't parse any more is logged and left out: it must not stop event processing."""
    usable = []
    for segment in selectors.segment_dynamic_list() if segments is None else segments:
        try:
            _parsed(segment)
        except FilterError:
            logger.exception("Segment %s: its stored filter is not valid any more", segment.key)
            continue
        usable.append(segment)
    return segments_in_dependency_order(usable)


# --- create, update, delete ---------------------------------------------------------------------


def segment_create(
    *,
    key: str,
    name: str,
    description: str = "",
    kind: str = SegmentKind.DYNAMIC,
    filter: Any = None,
    filter_text: str | None = None,
) -> Segment:
    """A new segment. A dynamic one is computed right after the commit."""
    if kind not in SegmentKind.values:
        raise DomainError(f"must be one of {', '.join(SegmentKind.values)}", field="kind")
    try:
        validate_slug(key)
    except ValidationError:
        raise DomainError("must be letters, digits, - or _", field="key") from None
    if Segment.objects.filter(key=key).exists():
        raise DomainError(f"A segment with key {key!r} exists", field="key", code="duplicate")
    tree = None
    if kind == SegmentKind.DYNAMIC:
        tree = segment_filter_parse(filter=filter, filter_text=filter_text, key=key)
    elif filter is not None or filter_text is not None:
        raise DomainError("A static segment has no filter: its members are listed", field="filter")
    try:
        with transaction.atomic():
            segment = Segment.objects.create(
                key=key, name=name, description=description, kind=kind, filter=tree
            )
            if kind == SegmentKind.DYNAMIC:
                segment_recompute_later(segment=segment)
    except IntegrityError:  # created meanwhile by another request
        raise DomainError(
            f"A segment with key {key!r} exists", field="key", code="duplicate"
        ) from None
    return segment


def segment_update(
    *,
    segment: Segment,
    name: str = UNSET,
    description: str = UNSET,
    kind: str = UNSET,
    filter: Any = UNSET,
    filter_text: str | None = UNSET,
) -> Segment:
    """Change a segment. A new filter (or a static segment made dynamic) is recomputed after
    the commit; a dynamic segment made static keeps its current members as its list."""
    fields: list[str] = []
    if name is not UNSET:
        segment.name = name
        fields.append("name")
    if description is not UNSET:
        segment.description = description
        fields.append("description")
    if kind is not UNSET and kind != segment.kind:
        if kind not in SegmentKind.values:
            raise DomainError(f"must be one of {', '.join(SegmentKind.values)}", field="kind")
        segment.kind = kind
        fields.append("kind")
    given = {
        name: value
        for name, value in (("filter", filter), ("filter_text", filter_text))
        if value is not UNSET
    }
    if segment.kind == SegmentKind.STATIC:
        if any(v is not None for v in given.values()):
            raise DomainError(
                "A static segment has no filter: its members are listed", field="filter"
            )
        if segment.filter is not None:
            segment.filter = None
            fields.append("filter")
    elif given or segment.filter is None:
        tree = segment_filter_parse(
            filter=given.get("filter"), filter_text=given.get("filter_text"), key=segment.key
        )
        if tree != segment.filter:
            segment.filter = tree
            fields.append("filter")
    if not fields:
        return segment
    with transaction.atomic():
        segment.save(update_fields=[*fields, "updated_at"])
        if segment.kind == SegmentKind.DYNAMIC and "filter" in fields:
            segment_recompute_later(segment=segment)
    return segment


def segment_delete(*, segment: Segment) -> None:
    """Delete a segment and its membership history; refused while another segment's filter
    uses it."""
    users = [
        other.key
        for other in selectors.segment_dynamic_list().exclude(pk=segment.pk)
        if segment.key in _parsed(other).references.segments
    ]
    if users:
        raise DomainError(
            f"Segment {segment.key!r} is used by the filter of {', '.join(sorted(users))}",
            code="in_use",
            status_code=409,
        )
    segment.delete()


# --- entering and leaving -----------------------------------------------------------------------


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


# --- static segments ----------------------------------------------------------------------------


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


# --- real time ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Touched:
    """What a batch of events did to one profile, for deciding which segments to look at."""

    event_names: set[str] = field(default_factory=set)
    identity: bool = False  # traits, identities or groups may have changed
    groups: bool = False
    # Types of groups whose own properties changed (segments reading those types only).
    group_keys: set[str] = field(default_factory=set)


def _could_change(parsed: Filter, touched: _Touched) -> bool:
    refs = parsed.references
    return bool(
        refs.any_event
        or refs.event_names & touched.event_names
        or set(refs.profile_fields) & STAT_FIELDS
        or (touched.identity and (refs.profile_fields or refs.trait_keys or refs.groups))
        or (touched.groups and refs.groups)
        or bool(touched.group_keys & refs.groups)
    )


def segments_process_events(*, events: Sequence[Any], profiles: dict[str, Profile]) -> None:
    """The segment step of processing: for the profiles of these events only, re-evaluate
    (in memory) the dynamic segments the events could change: those referencing the events'
    names, any event, profile stats, or (after identify/set/alias/group events) traits and
    groups. Runs inside processing's transaction, after the profile step."""
    segments = _dynamic_segments()
    if not segments or not events:
        return
    live = _live(
        Profile.objects.filter(pk__in={p.pk for p in profiles.values()}).values_list(
            "id", "merged_into_id"
        )
    )
    touched: dict[uuid.UUID, _Touched] = defaultdict(_Touched)
    for event in events:
        profile = profiles.get(event.distinct_id)
        if profile is None or profile.pk not in live:
            continue  # deleted meanwhile
        entry = touched[live[profile.pk]]
        entry.event_names.add(event.event_name)
        if event.event_name in profile_services.IDENTITY_EVENTS:
            entry.identity = True
        props = event.properties if isinstance(event.properties, dict) else {}
        if "$groups" in props:
            entry.groups = True
    if touched:
        _reevaluate(segments, touched)


def segments_reevaluate(*, profile_ids: Iterable[uuid.UUID | str]) -> None:
    """Re-evaluate every dynamic segment for these profiles (after a change made outside
    event processing: people operations, group changes, merges)."""
    segments = _dynamic_segments()
    ids = [uuid.UUID(str(p)) for p in profile_ids]
    if not segments or not ids:
        return
    live = _live(Profile.objects.filter(pk__in=ids).values_list("id", "merged_into_id"))
    everything = _Touched(identity=True, groups=True)
    with transaction.atomic():
        _reevaluate(segments, dict.fromkeys(set(live.values()), everything), all_segments=True)


def segments_reevaluate_later(*, profile_ids: Iterable[uuid.UUID | str]) -> None:
    """Queue a re-evaluation of these profiles once the current transaction commits (a
    failed publish is logged: the periodic recompute catches up)."""
    ids = sorted({str(p) for p in profile_ids})
    if ids:
        enqueue_on_commit(
            REEVALUATE_PROFILES_TASK,
            [ids],
            description=(
                f"the segment re-evaluation of {len(ids)} profiles; the periodic recompute "
                "will catch up"
            ),
        )


# A group's members are re-evaluated in memory, this many profiles per transaction; above
# GROUP_REEVALUATE_MAX members the periodic (set-wise) recompute catches up instead.
GROUP_REEVALUATE_CHUNK = 500
GROUP_REEVALUATE_MAX = 10_000


def segments_group_changed_later(*, group_id: int) -> None:
    """Queue, once the current transaction commits, a re-evaluation of the group's members
    for the segments that read its type (its own properties changed)."""
    enqueue_on_commit(
        REEVALUATE_GROUP_MEMBERS_TASK,
        [group_id],
        description=(
            f"the segment re-evaluation of group {group_id}'s members; the periodic recompute "
            "will catch up"
        ),
    )


def segments_reevaluate_group(*, group_id: int) -> int | None:
    """Re-evaluate, for the group's current members, the dynamic segments whose filter reads
    the group's type (`groups.<type>...` paths, `in_group` leaves), and the segments naming
    those in turn. In memory, GROUP_REEVALUATE_CHUNK profiles per transaction. Returns how
    many profiles were looked at, or None when the group has more than GROUP_REEVALUATE_MAX
    members: that is left to the periodic recompute (logged)."""
    membership = GroupMembership.objects.filter(group_id=group_id).select_related(
        "group__group_type"
    )
    first = membership.first()
    if first is None:
        return 0  # no members (or the group is gone)
    group_key = first.group.group_type.key
    segments = _dynamic_segments()
    if not any(group_key in _parsed(s).references.groups for s in segments):
        return 0
    ids = list(
        membership.order_by().values_list("profile_id", flat=True)[: GROUP_REEVALUATE_MAX + 1]
    )
    if len(ids) > GROUP_REEVALUATE_MAX:
        logger.warning(
            "Group %s (%s) has more than %d members: its segments are left to the periodic "
            "recompute",
            group_id,
            group_key,
            GROUP_REEVALUATE_MAX,
        )
        return None
    touched = _Touched(group_keys={group_key})
    for start in range(0, len(ids), GROUP_REEVALUATE_CHUNK):
        chunk = ids[start : start + GROUP_REEVALUATE_CHUNK]
        live = _live(Profile.objects.filter(pk__in=chunk).values_list("id", "merged_into_id"))
        with transaction.atomic():
            _reevaluate(segments, dict.fromkeys(set(live.values()), touched))
    return len(ids)


def _reevaluate(
    segments: list[Segment], touched: dict[uuid.UUID, _Touched], *, all_segments: bool = False
) -> None:
    """Evaluate the segments (in dependency order) that could have changed for each profile,
    apply the entries and exits, then the segments whose `in_segment` leaves name a segment
    that changed."""
    profiles = {p.pk: p for p in Profile.objects.filter(pk__in=list(touched))}
    by_key = {s.key: s for s in segments}
    parsed = {s.pk: _parsed(s) for s in segments}
    current: set[tuple[int, uuid.UUID]] = set(
        SegmentMembership.objects.filter(
            profile_id__in=list(profiles), exited_at__isnull=True, segment__in=segments
        ).values_list("segment_id", "profile_id")
    )
    todo: dict[int, set[uuid.UUID]] = defaultdict(set)
    for pk, entry in touched.items():
        if pk not in profiles:
            continue
        for segment in segments:
            if all_segments or _could_change(parsed[segment.pk], entry):
                todo[segment.pk].add(pk)
    now = timezone.now()
    # Each segment is evaluated at most once per profile per pass; a segment whose members
    # changed wakes the segments that reference it. Bounded: references have no cycles.
    for _ in range(len(segments) + 1):
        if not todo:
            break
        changed: dict[str, set[uuid.UUID]] = defaultdict(set)
        for segment in segments:
            pks = todo.pop(segment.pk, None)
            if not pks:
                continue
            entering, leaving = [], []
            for pk in sorted(pks):
                inside = _evaluate(segment, parsed[segment.pk], profiles[pk], now)
                if inside and (segment.pk, pk) not in current:
                    entering.append(pk)
                elif not inside and (segment.pk, pk) in current:
                    leaving.append(pk)
            entered = _enter(segment, entering, now)
            exited = _exit(segment, leaving, now)
            current.update((segment.pk, p) for _, p in entered)
            current.difference_update((segment.pk, p) for _, p in exited)
            _emit(segment, entered=entered, exited=exited, now=now)
            changed[segment.key].update(p for _, p in (*entered, *exited))
        for other in segments:
            refs = set(parsed[other.pk].references.segments)
            for key in refs & changed.keys():
                if key in by_key:
                    todo[other.pk].update(changed[key])


def _evaluate(segment: Segment, parsed: Filter, profile: Profile, now: datetime) -> bool:
    try:
        return evaluate(parsed, profile=profile, now=now)
    except FilterError:
        # A filter valid when saved can stop being usable (a segment it names was deleted):
        # the profile is left as it is, and the error is visible.
        logger.exception("Segment %s: its filter can't be evaluated", segment.key)
        return (segment.pk, profile.pk) in set(
            SegmentMembership.objects.filter(
                segment=segment, profile=profile, exited_at__isnull=True
            ).values_list("segment_id", "profile_id")
        )


# --- the set-wise recompute ---------------------------------------------------------------------


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


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _emit_bulk(
    segment: Segment, *, entered: Sequence[Any], exited: Sequence[Any], now: datetime
) -> None:
    """The segment_entered/segment_exited events of these stays (bulk), without touching the
    member count (the recompute sets it exactly). The message id is the stay's, so a retried
    emission stores nothing twice."""
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


def segments_in_dependency_order(segments: Iterable[Segment]) -> list[Segment]:
    """Segments named by `in_segment` leaves come before the segments that name them."""
    pending = {s.key: s for s in segments}
    ordered: list[Segment] = []
    placed: set[str] = set()
    while pending:
        ready = [
            s
            for s in pending.values()
            if not (set(_parsed(s).references.segments) & (pending.keys() - {s.key}))
        ] or list(pending.values())  # a cycle (refused when saved): any order ends it
        for segment in sorted(ready, key=lambda s: s.key):
            ordered.append(segment)
            placed.add(segment.key)
            pending.pop(segment.key)
    return ordered


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


def segment_recompute_later(*, segment: Segment) -> None:
    """Queue a recompute of the segment once the current transaction commits."""
    enqueue_on_commit(
        RECOMPUTE_SEGMENT_TASK, [segment.pk], description=f"the recompute of segment {segment.pk}"
    )


# --- merges -------------------------------------------------------------------------------------


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
