"""Per-person locks: processing and changes made outside it serialise on the same names."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.db import connection

from apps.profiles.services import identity_lock_names


def _lock_name_to_key(name: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


def locks_hold(names: Iterable[str]) -> None:
    """Hold these named locks until the transaction ends (processing holds each person's and
    each client session's).

    PostgreSQL: transaction-level advisory locks, taken in one sorted order so two workers can't
    deadlock. SQLite lets one writer in at a time, which already serializes processing."""
    if connection.vendor != "postgresql":
        return
    keys = sorted({_lock_name_to_key(name) for name in names})
    if not keys:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", [keys])


def person_locks_hold(*, distinct_ids: Iterable[str]) -> None:
    """Hold, until the current transaction ends, the locks processing holds for these people
    (their identity locks, named as profile_lock_names names them): a change made outside
    processing (a workflow run's merge_by or people operations) then serialises with the
    processing of the same person. Identifiers ("email:ann@example.com") lock the same way."""
    if not connection.in_atomic_block:
        # In autocommit a transaction-level lock would be released as soon as it is taken.
        raise RuntimeError("person_locks_hold must be called inside a transaction")
    names = identity_lock_names(distinct_ids)
    if names:
        locks_hold(names)
