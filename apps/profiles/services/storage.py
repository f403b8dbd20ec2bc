"""Row-level writes on profiles shared by the services: locks, history, raw-SQL bulk writes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from apps.profiles import traits as trait_ops
from apps.profiles.models import (
    Profile,
    ProfileHistory,
)


def _lock_profiles(*profile_ids: uuid.UUID) -> dict[uuid.UUID, Profile]:
    """Row-lock the profiles (in id order, so two merges can't deadlock)."""
    rows = Profile.objects.select_for_update().filter(pk__in=set(profile_ids)).order_by("pk")
    return {p.pk: p for p in rows}


def _history(
    profile: Profile, action: str, detail: dict[str, Any], actor: str = "", user: Any = None
) -> None:
    ProfileHistory.objects.create(
        profile=profile, action=action, detail=detail, actor=actor[:255], user=user
    )


def _target(profile: Profile) -> trait_ops.TraitTarget:
    return trait_ops.TraitTarget(profile.traits, profile.private_traits, profile.trait_meta)


def _min_time(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(t for t in (a, b) if t) if (a or b) else None


def _max_time(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(t for t in (a, b) if t) if (a or b) else None


_TRAITS_FIELDS = ("traits", "private_traits", "trait_meta", "updated_at")


def _profile_traits_write(profiles: Sequence[Profile]) -> None:
    """Write the traits of many profiles in one statement. On PostgreSQL the rows go as one
    JSON document (jsonb_to_recordset): arrays of JSON texts are escaped element by element by
    the client, which cost more than the update."""
    if connection.vendor != "postgresql":
        Profile.objects.bulk_update(profiles, list(_TRAITS_FIELDS))
        return
    table = connection.ops.quote_name(Profile._meta.db_table)
    rows = [
        {
            "id": str(p.pk),
            "traits": p.traits,
            "private_traits": p.private_traits,
            "trait_meta": p.trait_meta,
            "updated_at": p.updated_at,
        }
        for p in profiles
    ]
    try:
        document = orjson.dumps(rows, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:  # integers beyond 64 bits: what a model save would write
        document = json.dumps(rows, cls=DjangoJSONEncoder)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS p SET traits = u.traits, private_traits = u.private_traits, "  # noqa: S608
            "trait_meta = u.trait_meta, updated_at = u.updated_at "
            "FROM jsonb_to_recordset(%s::jsonb) AS u(id uuid, traits jsonb, "
            "private_traits jsonb, trait_meta jsonb, updated_at timestamptz) WHERE p.id = u.id",
            [document],
        )


_STATS_FIELDS = ("event_count", "session_count", "first_seen", "last_seen", "updated_at")


def _profile_stats_write(profiles: Sequence[Profile]) -> None:
    """Write the stats of many profiles in one statement (PostgreSQL) or one prepared statement
    run per row (SQLite): Django's bulk_update builds a CASE per column and row, which cost
    most of a 1,000-event processing task."""
    table = connection.ops.quote_name(Profile._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} AS p SET event_count = u.ec, session_count = u.sc, "  # noqa: S608
                "first_seen = u.fs, last_seen = u.ls, updated_at = u.ua "
                "FROM unnest(%s::uuid[], %s::bigint[], %s::bigint[], %s::timestamptz[], "
                "%s::timestamptz[], %s::timestamptz[]) AS u(id, ec, sc, fs, ls, ua) "
                "WHERE p.id = u.id",
                [
                    [p.pk for p in profiles],
                    *([getattr(p, name) for p in profiles] for name in _STATS_FIELDS),
                ],
            )
            return
        pk_field = Profile._meta.pk
        assert pk_field is not None
        when = connection.ops.adapt_datetimefield_value
        cursor.executemany(
            f"UPDATE {table} SET event_count = %s, session_count = %s, first_seen = %s, "  # noqa: S608
            "last_seen = %s, updated_at = %s WHERE id = %s",
            [
                [
                    p.event_count,
                    p.session_count,
                    when(p.first_seen),
                    when(p.last_seen),
                    when(p.updated_at),
                    pk_field.get_db_prep_value(p.pk, connection),
                ]
                for p in profiles
            ],
        )
