"""Erase one person: delete (never rewrite) every row about them, in short batches.

Each batch is its own transaction deleting at most `CDP_PRIVACY_DELETE_BATCH` rows by primary
key: row locks on those rows only, never a lock on the events table, so ingest and processing
go on while a long history is deleted. Order: the apps above (segment memberships, workflow
runs and traces, through their handlers), events, sessions, then the profiles (their
identities, merges, history, group memberships and refused merges go with them) and the admin
log entries that name them. Sweeps repeat while an event raced in (bounded)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast

from apps.consents.privacy.hooks import Person, person_data_handlers
from apps.events.models import Event, Session
from apps.profiles.models import (
    GroupMembership,
    Identity,
    MergeConflict,
    Profile,
    ProfileHistory,
    ProfileMerge,
)

Progress = Callable[[str, int], None]
MAX_SWEEPS = 3


def _batch_size() -> int:
    return max(1, int(getattr(settings, "CDP_PRIVACY_DELETE_BATCH", 5000)))


def delete_in_batches(
    queryset: models.QuerySet[Any], *, table: str, progress: Progress, batch: int | None = None
) -> int:
    """Delete the queryset's rows `batch` primary keys at a time, one short transaction each.
    The keys are read once, in one pass over the index that finds them: asking the index again
    after every batch would walk past the entries of the rows already deleted (dead until
    vacuum), so each batch would cost more than the one before. Rows added meanwhile are left
    to the caller's next sweep. The on_delete rules of rows pointing here apply (_delete_pks)."""
    size = batch or _batch_size()
    model = queryset.model
    pks = list(queryset.order_by("pk").values_list("pk", flat=True))
    deleted = 0
    for start in range(0, len(pks), size):
        with transaction.atomic():
            n = _delete_pks(model, pks[start : start + size])
        deleted += n
        progress(table, n)
    return deleted


def _delete_pks(model: type[models.Model], pks: list[Any]) -> int:
    """Delete rows by primary key. When every relation pointing at the model only nulls its
    column (SET_NULL, DO_NOTHING), that is one UPDATE per relation and one DELETE statement,
    without loading the rows (the ORM's collector would read all 5,000 events first);
    otherwise the ORM's delete, with its cascades."""
    relations = [r for r in model._meta.related_objects if not r.many_to_many]
    if any(r.on_delete not in (models.SET_NULL, models.DO_NOTHING) for r in relations):
        _, per_model = model._base_manager.filter(pk__in=pks).delete()
        return per_model.get(model._meta.label, 0)
    for relation in relations:
        if relation.on_delete is models.SET_NULL:
            name = relation.field.name
            relation.related_model._base_manager.filter(**{f"{name}__in": pks}).update(
                **{name: None}
            )
    query = model._base_manager.filter(pk__in=pks)
    return int(query._raw_delete(query.db))


def _mentions(person: Person) -> Q:
    needles = [*person.distinct_ids, *(str(p) for p in person.profile_ids)]
    q = Q(pk__in=[])
    for needle in needles:
        q |= Q(detail_text__contains=needle) | Q(actor__contains=needle)
    return q


def _log_entries(person: Person) -> models.QuerySet[LogEntry]:
    profile_type = ContentType.objects.get_for_model(Profile)
    identity_type = ContentType.objects.get_for_model(Identity)
    identity_pks = Identity.objects.filter(
        Q(profile_id__in=person.profile_ids) | Q(distinct_id__in=person.distinct_ids)
    ).values_list("pk", flat=True)
    q = Q(content_type=profile_type, object_id__in=[str(p) for p in person.profile_ids])
    q |= Q(content_type=identity_type, object_id__in=[str(p) for p in identity_pks])
    for distinct_id in person.distinct_ids:
        q |= Q(object_repr__contains=distinct_id)
    return LogEntry.objects.filter(q)


def person_counts(person: Person) -> dict[str, int]:
    """Rows about the person, per table: the totals of a request, zero after an erase."""
    profiles = person.profile_ids
    counts = {
        "events": Event.objects.filter(distinct_id__in=person.distinct_ids).count()
        + len(linking_events(person)),
        "sessions": Session.objects.filter(distinct_id__in=person.distinct_ids).count(),
        "profiles": Profile.objects.filter(pk__in=profiles).count(),
        "identities": Identity.objects.filter(
            Q(profile_id__in=profiles) | Q(distinct_id__in=person.distinct_ids)
        ).count(),
        "merges": ProfileMerge.objects.filter(
            Q(survivor_id__in=profiles) | Q(merged_id__in=profiles)
        ).count(),
        "profile_history": ProfileHistory.objects.annotate(detail_text=Cast("detail", TextField()))
        .filter(Q(profile_id__in=profiles) | _mentions(person))
        .count(),
        "group_memberships": GroupMembership.objects.filter(profile_id__in=profiles).count(),
        "admin_log": _log_entries(person).count(),
    }
    for handler in person_data_handlers():
        counts.update(handler.count(person=person))
    return counts


def person_erase(*, person: Person, progress: Progress) -> dict[str, int]:
    """Delete every row about the person; returns rows deleted per table."""
    done: dict[str, int] = {}

    def count(table: str, n: int) -> None:
        done[table] = done.get(table, 0) + n
        progress(table, n)

    # Found before the refused merges that lead to them go with the profiles.
    linking = linking_events(person)
    for _sweep in range(MAX_SWEEPS):
        for handler in person_data_handlers():
            handler.erase(person=person, progress=count)
        delete_in_batches(
            Event.objects.filter(distinct_id__in=person.distinct_ids),
            table="events",
            progress=count,
        )
        delete_in_batches(Event.objects.filter(pk__in=linking), table="events", progress=count)
        delete_in_batches(
            Session.objects.filter(distinct_id__in=person.distinct_ids),
            table="sessions",
            progress=count,
        )
        _erase_profiles(person, count)
        if not Event.objects.filter(distinct_id__in=person.distinct_ids).exists() and not (
            Identity.objects.filter(distinct_id__in=person.distinct_ids).exists()
        ):
            break
        # An event of the person was stored (or processed) while we deleted: go again, taking
        # in the profile it made.
        person = _with_new_profiles(person)
    return done


LINKING_EVENTS = ("$identify", "$create_alias")
LINKED_ID_PROPERTIES = ("$anonymous_id", "alias")


def linking_events(person: Person) -> list[int]:
    """Events of someone else naming one of the person's ids: an identify or alias that tried
    to link the two and was refused (a merge conflict). Looked up among the other side's
    identity events only (through the conflicts), never by scanning every event."""
    profiles = person.profile_ids
    conflicts = MergeConflict.objects.filter(
        Q(profile_id__in=profiles) | Q(other_profile_id__in=profiles)
    ).values_list("profile_id", "other_profile_id")
    others = {pk for pair in conflicts for pk in pair} - set(profiles)
    if not others:
        return []
    other_ids = Identity.objects.filter(profile_id__in=others).values_list("distinct_id", flat=True)
    ids = set(person.distinct_ids)
    found = []
    candidates = Event.objects.filter(
        distinct_id__in=list(other_ids), event_name__in=LINKING_EVENTS
    ).values_list("pk", "properties")
    for pk, properties in candidates.iterator(chunk_size=2000):
        props = properties if isinstance(properties, dict) else {}
        if any(props.get(name) in ids for name in LINKED_ID_PROPERTIES):
            found.append(pk)
    return found


def _with_new_profiles(person: Person) -> Person:
    found = tuple(
        Identity.objects.filter(distinct_id__in=person.distinct_ids)
        .exclude(profile_id__in=person.profile_ids)
        .values_list("profile_id", flat=True)
        .distinct()
    )
    return Person(profile_ids=person.profile_ids + found, distinct_ids=person.distinct_ids)


def _delete(queryset: models.QuerySet[Any]) -> int:
    """Delete the rows (the ORM's delete: on_delete rules apply); returns this model's count."""
    model = queryset.model
    pks = list(queryset.order_by().values_list("pk", flat=True))
    if not pks:
        return 0
    _, per_model = model.objects.filter(pk__in=pks).delete()
    return per_model.get(model._meta.label, 0)


def _erase_profiles(person: Person, count: Progress) -> None:
    profiles = person.profile_ids
    with transaction.atomic():
        # What names the person outside their own rows: admin log entries, and the history of
        # other profiles (a refused merge with them, an undone merge).
        count("admin_log", _delete(_log_entries(person)))
        history = ProfileHistory.objects.annotate(detail_text=Cast("detail", TextField()))
        count(
            "profile_history",
            _delete(history.filter(Q(profile_id__in=profiles) | _mentions(person))),
        )
        count(
            "identities",
            _delete(
                Identity.objects.filter(
                    Q(profile_id__in=profiles) | Q(distinct_id__in=person.distinct_ids)
                )
            ),
        )
        count(
            "merges",
            _delete(
                ProfileMerge.objects.filter(Q(survivor_id__in=profiles) | Q(merged_id__in=profiles))
            ),
        )
        count("group_memberships", _delete(GroupMembership.objects.filter(profile_id__in=profiles)))
        # The rest of what points at the profiles (refused merges, rows of apps that cascade)
        # goes with them.
        count("profiles", _delete(Profile.objects.filter(pk__in=profiles)))
