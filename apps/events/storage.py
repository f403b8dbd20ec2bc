"""The bulk insert of a batch: one statement, dedupe by the (source, message_id) constraint.

PostgreSQL gets the batch as one array per column (INSERT ... SELECT FROM unnest), which keeps
the statement and its plan the same whatever the batch size, sent as binary parameters bound by
the server; SQLite gets a multi-row VALUES.
Both skip rows whose message was stored before and return the ids of the rows they inserted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, transaction

from apps.events.incoming import IncomingEvent
from apps.events.models import Event

_COLUMNS = (
    "source_id",
    "message_id",
    "event_name",
    "distinct_id",
    "category",
    "timestamp",
    "received_at",
    "properties",
    "context",
    "session_key",
    "platform",
    "personless",
)
_TABLE = Event._meta.db_table

# %b: binary parameters. Django's cursors bind parameters on the client, quoting every array
# element into the SQL text, which took most of a 500-event request; binary arrays are copied
# as they are. The text arrays are cast to uuid/jsonb by the server, as COPY's input would be.
_PG_INSERT = f"""
INSERT INTO {_TABLE} ({", ".join(_COLUMNS)})
SELECT * FROM unnest(
    %b::uuid[], %b::text[], %b::text[], %b::text[], %b::text[],
    %b::timestamptz[], %b::timestamptz[], %b::jsonb[], %b::jsonb[], %b::text[],
    %b::boolean[], %b::boolean[]
)
ON CONFLICT (source_id, message_id) DO NOTHING
RETURNING id
"""  # noqa: S608 - table and column names are constants
# The insert of the requests a web process groups into one commit (apps/events/groupcommit.py):
# the rows as one JSON array (a single parameter, so one prepared statement whatever their
# number, and properties and context embedded as the JSON text they already are); each new row
# says whose it is.
PG_INSERT_JSON_ROWS = f"""
INSERT INTO {_TABLE} ({", ".join(_COLUMNS)})
SELECT {", ".join(_COLUMNS)}
FROM jsonb_to_recordset(%s::jsonb) AS incoming(
    source_id uuid, message_id text, event_name text, distinct_id text, category text,
    timestamp timestamptz, received_at timestamptz, properties jsonb, context jsonb,
    session_key text, platform boolean, personless boolean
)
ON CONFLICT (source_id, message_id) DO NOTHING
RETURNING id, source_id, message_id
"""  # noqa: S608 - table and column names are constants

# For the rest of the ingest transaction only (is_local): a locked or stalled events table
# fails the request fast (503, the client retries) instead of holding a web worker.
_PG_TIMEOUTS = (
    "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)"
)


def events_store(events: Sequence[IncomingEvent]) -> list[int]:
    """Insert the events in a transaction and return the ids of those that were new, once
    that transaction is committed (or, inside the caller's transaction, once it is written).

    PostgreSQL outside a transaction: the timeouts and the insert go to the server in one
    pipeline, which runs them as one implicit transaction committed at its Sync: one round
    trip instead of four (BEGIN, timeouts, insert, COMMIT), and the same guarantee: when this
    returns, the events are committed; when it raises, nothing was stored."""
    if not events:
        return []
    if (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and psycopg.Pipeline.is_supported()  # libpq 14+: psycopg-binary bundles one
    ):
        return _pg_store_pipelined(events)
    with transaction.atomic():
        return events_insert(events)


def _pg_store_pipelined(events: Sequence[IncomingEvent]) -> list[int]:
    with connection.wrap_database_errors:
        settings_cursor, insert_cursor = _server_bound_cursor(), _server_bound_cursor()
        try:
            pgconn: Any = connection.connection
            with pgconn.pipeline():
                # Autocommit, so no BEGIN: the statements up to the pipeline's Sync (sent at
                # the end of this block) run as one implicit transaction, committed before the
                # server answers the Sync.
                timeout = settings.CDP_INGEST_DB_TIMEOUT_MS
                if timeout:
                    settings_cursor.execute(_PG_TIMEOUTS, [f"{timeout}ms", f"{timeout}ms"])
                insert_cursor.execute(_PG_INSERT, columns_of(events))
            # Read after the Sync was answered, that is after the commit.
            return [row[0] for row in insert_cursor.fetchall()]
        finally:
            settings_cursor.close()
            insert_cursor.close()


def events_insert(events: Sequence[IncomingEvent]) -> list[int]:
    """Insert the events; return the ids of those that were new."""
    if not events:
        return []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            timeout = settings.CDP_INGEST_DB_TIMEOUT_MS
            if timeout and connection.in_atomic_block:
                cursor.execute(_PG_TIMEOUTS, [f"{timeout}ms", f"{timeout}ms"])
        with _server_bound_cursor() as cursor:
            cursor.execute(_PG_INSERT, columns_of(events))
            return [row[0] for row in cursor.fetchall()]
    with connection.cursor() as cursor:
        cursor.execute(*_values_insert(events))
        return [row[0] for row in cursor.fetchall()]


def _server_bound_cursor() -> Any:
    """A cursor of Django's PostgreSQL connection whose parameters the server binds (psycopg's
    Cursor rather than the ClientCursor Django uses), wrapped as Django wraps its own cursors
    so the statement is still logged and counted."""
    connection.ensure_connection()
    raw: Any = psycopg.Cursor(connection.connection)  # the stubs expect a wrapper here
    if connection.queries_logged:
        return connection.make_debug_cursor(raw)
    return connection.make_cursor(raw)


def columns_of(events: Sequence[IncomingEvent]) -> list[list[object]]:
    return [
        [e.source_id for e in events],
        [e.message_id for e in events],
        [e.event_name for e in events],
        [e.distinct_id for e in events],
        [e.category for e in events],
        [e.timestamp for e in events],
        [e.received_at for e in events],
        [e.properties_json for e in events],
        [e.context_json for e in events],
        [e.session_key for e in events],
        [e.platform for e in events],
        [bool(e.personless) for e in events],
    ]


def _values_insert(events: Sequence[IncomingEvent]) -> tuple[str, list[Any]]:
    ops = connection.ops
    placeholders = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    sql = (
        f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) VALUES "  # noqa: S608 - constants
        + ", ".join([placeholders] * len(events))
        + " ON CONFLICT (source_id, message_id) DO NOTHING RETURNING id"
    )
    params: list[object] = []
    for e in events:
        params.extend(
            (
                e.source_id.replace("-", ""),  # Django stores UUIDs as 32 hex digits here
                e.message_id,
                e.event_name,
                e.distinct_id,
                e.category,
                ops.adapt_datetimefield_value(e.timestamp),
                ops.adapt_datetimefield_value(e.received_at),
                e.properties_json,
                e.context_json,
                e.session_key,
                e.platform,
                bool(e.personless),
            )
        )
    return sql, params


def events_mark_processed(
    event_ids: Sequence[int], session_ids: Sequence[Any], processed_at: datetime
) -> None:
    """Set each event's session (None: it has none, as platform events) and processed_at in
    one statement (PostgreSQL) or one prepared statement run per row (SQLite)."""
    if not event_ids:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {_TABLE} AS e SET session_id = u.sid, processed_at = %s "  # noqa: S608
                "FROM unnest(%s::bigint[], %s::uuid[]) AS u(id, sid) WHERE e.id = u.id",
                [
                    processed_at,
                    list(event_ids),
                    [None if s is None else str(s) for s in session_ids],
                ],
            )
        else:
            when = connection.ops.adapt_datetimefield_value(processed_at)
            cursor.executemany(
                f"UPDATE {_TABLE} SET session_id = %s, processed_at = %s WHERE id = %s",  # noqa: S608
                [
                    (None if s is None else str(s).replace("-", ""), when, event_id)
                    for event_id, s in zip(event_ids, session_ids, strict=True)
                ],
            )
