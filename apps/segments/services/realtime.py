"""Real-time re-evaluation after events, profile changes and group changes."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.events.incoming import ProcessableEvent
from apps.profiles import services as profile_services
from apps.profiles.models import GroupMembership, Profile
from apps.segments.filtering import (
    Filter,
    FilterError,
    evaluate,
)
from apps.segments.models import Segment, SegmentMembership
from apps.segments.services.definitions import _dynamic_segments, _parsed
from apps.segments.services.membership import _emit, _enter, _exit, _live
from cdp.tasks import enqueue_on_commit

logger = logging.getLogger(__name__)


# Profile fields every processed event changes.
STAT_FIELDS = frozenset({"first_seen", "last_seen", "event_count", "session_count"})


REEVALUATE_PROFILES_TASK = "apps.segments.tasks.reevaluate_profiles"


REEVALUATE_GROUP_MEMBERS_TASK = "apps.segments.tasks.reevaluate_group_members"


@dataclass(slots=True)
class _Touched:
    """What a batch of events did to one profile, for deciding which segments to look at."""

    event_names: set[str] = field(default_factory=set)
    # The person's own events (not only platform ones): stats and `performed any` may change.
    activity: bool = False
    identity: bool = False  # traits, identities or groups may have changed
    groups: bool = False
    # Types of groups whose own properties changed (segments reading those types only).
    group_keys: set[str] = field(default_factory=set)


def _could_change(parsed: Filter, touched: _Touched) -> bool:
    refs = parsed.references
    return bool(
        (touched.activity and (refs.any_event or set(refs.profile_fields) & STAT_FIELDS))
        or refs.event_names & touched.event_names
        or (touched.identity and (refs.profile_fields or refs.trait_keys or refs.groups))
        or (touched.groups and refs.groups)
        or bool(touched.group_keys & refs.groups)
    )


def segments_process_events(
    *, events: Sequence[ProcessableEvent], profiles: dict[str, Profile]
) -> None:
    """The segment step of processing: for the profiles of these events only, re-evaluate
    (in memory) the dynamic segments the events could change: those referencing the events'
    names, any activity or profile stats (when they are the person's own events, not only
    platform events), or (after identify/set/alias/group events) traits and
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
        entry.activity = entry.activity or not event.platform
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
    everything = _Touched(activity=True, identity=True, groups=True)
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
