"""The export archive: one person's rows as NDJSON files in a zip, with a manifest.

Files: profiles, identities, merges, profile_history, group_memberships, events, sessions (read
here), then one file per table of every registered PersonDataHandler (segment memberships,
workflow runs, consents, deliveries...). Events stream from the database in chunks, so a long
history never sits in memory at once."""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import orjson
from django.db.models import Q
from django.utils import timezone

from apps.consents.privacy.hooks import Person, person_data_handlers
from apps.events.models import Event, Session
from apps.profiles.models import GroupMembership, Identity, Profile, ProfileHistory, ProfileMerge

CHUNK = 2000
FORMAT_VERSION = 1


def _dumps(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, default=str, option=orjson.OPT_NON_STR_KEYS)


def _profiles(person: Person) -> Iterator[dict[str, Any]]:
    for p in Profile.objects.filter(pk__in=person.profile_ids).order_by("created_at"):
        yield {
            "id": p.pk,
            "merged_into": p.merged_into_id,
            "identified": p.identified,
            "traits": p.traits,
            "private_traits": p.private_traits,
            "first_seen": p.first_seen,
            "last_seen": p.last_seen,
            "event_count": p.event_count,
            "session_count": p.session_count,
            "created_at": p.created_at,
            "updated_at": p.updated_at,
        }


def _identities(person: Person) -> Iterator[dict[str, Any]]:
    rows = Identity.objects.filter(profile_id__in=person.profile_ids).order_by("created_at", "pk")
    for i in rows:
        yield {
            "distinct_id": i.distinct_id,
            "kind": i.kind,
            "profile_id": i.profile_id,
            "created_at": i.created_at,
        }


def _merges(person: Person) -> Iterator[dict[str, Any]]:
    rows = ProfileMerge.objects.filter(
        Q(survivor_id__in=person.profile_ids) | Q(merged_id__in=person.profile_ids)
    ).order_by("created_at", "pk")
    for m in rows:
        yield {
            "survivor": m.survivor_id,
            "merged": m.merged_id,
            "trigger": m.trigger,
            "triggered_by": m.triggered_by,
            "moved_distinct_ids": m.moved_distinct_ids,
            "merged_snapshot": m.merged_snapshot,
            "created_at": m.created_at,
            "undone_at": m.undone_at,
        }


def _history(person: Person) -> Iterator[dict[str, Any]]:
    rows = ProfileHistory.objects.filter(profile_id__in=person.profile_ids).order_by("created_at")
    for h in rows:
        yield {
            "profile_id": h.profile_id,
            "action": h.action,
            "detail": h.detail,
            "actor": h.actor,
            "created_at": h.created_at,
        }


def _group_memberships(person: Person) -> Iterator[dict[str, Any]]:
    rows = GroupMembership.objects.filter(profile_id__in=person.profile_ids).select_related(
        "group__group_type"
    )
    for g in rows.order_by("created_at", "pk"):
        yield {
            "profile_id": g.profile_id,
            "group_type": g.group.group_type.key,
            "group_id": g.group.group_id,
            "joined_at": g.created_at,
        }


def _events(person: Person) -> Iterator[dict[str, Any]]:
    rows = (
        Event.objects.filter(distinct_id__in=person.distinct_ids)
        .order_by("timestamp", "pk")
        .values(
            "id",
            "source__name",
            "message_id",
            "event_name",
            "distinct_id",
            "category",
            "timestamp",
            "received_at",
            "properties",
            "context",
            "session_id",
        )
    )
    for row in rows.iterator(chunk_size=CHUNK):
        out: dict[str, Any] = dict(row)
        out["source"] = out.pop("source__name")
        yield out


def _sessions(person: Person) -> Iterator[dict[str, Any]]:
    rows = Session.objects.filter(distinct_id__in=person.distinct_ids).order_by("started_at")
    for row in rows.values().iterator(chunk_size=CHUNK):
        out: dict[str, Any] = dict(row)
        out.pop("source_id", None)
        yield out


OWN_FILES: dict[str, Callable[[Person], Iterable[dict[str, Any]]]] = {
    "profiles": _profiles,
    "identities": _identities,
    "merges": _merges,
    "profile_history": _history,
    "group_memberships": _group_memberships,
    "events": _events,
    "sessions": _sessions,
}


def export_files(person: Person) -> Iterator[tuple[str, Iterable[dict[str, Any]]]]:
    """(file name, rows) of every file of the archive, this app's first."""
    for name, rows in OWN_FILES.items():
        yield name, rows(person)
    for handler in person_data_handlers():
        yield from handler.export(person=person).items()


def export_write(
    *,
    person: Person,
    out: IO[bytes],
    request_id: str,
    progress: Callable[[str, int], None] = lambda name, n: None,
) -> dict[str, int]:
    """Write the archive into `out`; returns rows per file. `progress(file, rows)` is called
    every CHUNK rows and at the end of each file."""
    counts: dict[str, int] = {}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, rows in export_files(person):
            count = 0
            with archive.open(f"{name}.ndjson", "w", force_zip64=True) as handle:
                for row in rows:
                    handle.write(_dumps(row) + b"\n")
                    count += 1
                    if count % CHUNK == 0:
                        progress(name, count)
            counts[name] = count
            progress(name, count)
        manifest = {
            "format": FORMAT_VERSION,
            "request": request_id,
            "generated_at": timezone.now(),
            "files": {f"{name}.ndjson": n for name, n in counts.items()},
        }
        archive.writestr("manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return counts


def export_build(
    *, person: Person, request_id: str, progress: Callable[[str, int], None]
) -> tuple[bytes, str, dict[str, int]]:
    """The archive's bytes (spooled to disk past 16 MB while written), sha256 and counts."""
    with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
        counts = export_write(person=person, out=spool, request_id=request_id, progress=progress)
        spool.seek(0)
        content = spool.read()
    return content, hashlib.sha256(content).hexdigest(), counts
