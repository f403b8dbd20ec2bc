"""Group commit of small ingest requests: one insert and one commit for the requests of a web
process that arrive together (PostgreSQL).

A one-event request used to pay a whole transaction of its own: a pooled connection checked
out and returned, the per-transaction timeouts, the insert and a durable commit. Here the
requests of a process share one connection, used by one request at a time, the leader: a
request that finds no insert in flight becomes the leader and inserts its events at once; the
requests arriving meanwhile queue up, and when the leader's insert is done it hands the
leadership to the first of them, which inserts everything queued in one statement and wakes
the others with the ids of their new rows. With no concurrency that is one insert in the
request's own thread (no hand-over to another thread, which under the GIL cost more than the
insert); under load, one commit for many requests.

"2xx = committed" and "nothing half-stored" hold as before: the connection is in autocommit,
so a request answers after the commit that holds its events, and a failed statement stores
none of the requests it carried, each of which answers 503.

The connection is used only for this insert, so its session timeouts
(CDP_INGEST_DB_TIMEOUT_MS) are set once, not per request. The statement takes the rows as one
JSON parameter, prepared once per connection: the already-serialized properties and context are
embedded as they are, which costs the client about half of binding twelve arrays. Large batches
keep the ordinary path: one commit already serves their many events.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from django import db
from django.conf import settings
from django.db import connection

from apps.events.incoming import IncomingEvent
from apps.events.storage import PG_INSERT_JSON_ROWS

logger = logging.getLogger(__name__)

# Events one statement carries at most: the requests of a burst, not an unbounded document.
MAX_EVENTS_PER_STATEMENT = 2000
# Seconds a queued request waits past the ingest timeout (CDP_INGEST_DB_TIMEOUT_MS) before it
# gives up with a 503: the leader's statement gives up by then, or it is stuck.
WAIT_MARGIN_SECONDS = 10.0
# Django's error classes by psycopg's, most specific first (as Django's own wrapper maps them).
_ERROR_NAMES = (
    "DataError",
    "OperationalError",
    "IntegrityError",
    "InternalError",
    "ProgrammingError",
    "NotSupportedError",
    "DatabaseError",
    "InterfaceError",
    "Error",
)


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(slots=True)
class _Job:
    events: Sequence[IncomingEvent]
    # Released when the job is done or its request becomes the leader: a bare lock, cheaper
    # to hand over than an Event (this is paid per request).
    wake: threading.Lock = field(default_factory=_held_lock)
    done: bool = False
    lead: bool = False
    ids: list[int] = field(default_factory=list)
    error: BaseException | None = None


def _django_error(exc: psycopg.Error) -> db.Error:
    """The Django exception the tracking views already answer (503), as Django would raise."""
    for name in _ERROR_NAMES:
        if isinstance(exc, getattr(psycopg, name)):
            error: db.Error = getattr(db, name)(*exc.args)
            error.__cause__ = exc
            return error
    return db.DatabaseError(str(exc))


def _rows_json(events: Sequence[IncomingEvent]) -> str:
    """The rows as the JSON array PG_INSERT_JSON_ROWS reads; properties and context are already
    JSON text (validated and stripped of NUL at parse), embedded without being parsed again."""
    return orjson.dumps(
        [
            {
                "source_id": e.source_id,
                "message_id": e.message_id,
                "event_name": e.event_name,
                "distinct_id": e.distinct_id,
                "category": e.category,
                "timestamp": e.timestamp,
                "received_at": e.received_at,
                "properties": orjson.Fragment(e.properties_json),
                "context": orjson.Fragment(e.context_json),
                "session_key": e.session_key,
                "platform": bool(e.platform),
                "personless": bool(e.personless),
            }
            for e in events
        ]
    ).decode()


class GroupWriter:
    """One per web process: the shared connection and the queue of requests waiting for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the queue and the leadership
        self._queue: deque[_Job] = deque()
        self._writing = False
        self._pid = os.getpid()
        self._conn: psycopg.Connection[Any] | None = None
        self._cursor: psycopg.Cursor[Any] | None = None
        self._timeout_ms: int | None = None
        self.statements = 0  # statements sent, for the query-count test

    def store(self, events: Sequence[IncomingEvent]) -> list[int]:
        """Insert the events with whatever else is waiting; return the ids of the new rows
        once they are committed. Raises a django.db error when nothing was stored."""
        self._after_fork()
        job = _Job(events)
        with self._lock:
            self._queue.append(job)
            job.lead = not self._writing
            self._writing = True
        # The statement gives up after the ingest timeout; a connect after the connect
        # timeout: past both (and a margin) the leader is stuck, and the client retries.
        wait = (settings.CDP_INGEST_DB_TIMEOUT_MS or 30_000) / 1000 + WAIT_MARGIN_SECONDS
        while not job.done:
            if job.lead:
                self._lead()
            elif not job.wake.acquire(timeout=wait):
                with self._lock:
                    if job.lead or job.done:  # woken just now
                        continue
                    # Never leave a job nobody waits for in the queue: the leadership would
                    # be handed to it, and every later request would wait for nothing.
                    if job in self._queue:
                        self._queue.remove(job)
                raise db.OperationalError("The ingest writer did not answer in time")
        if job.error is not None:
            raise job.error
        return job.ids

    def close(self) -> None:
        """Close the connection now (tests, before a database is dropped); the next insert
        opens a new one."""
        with self._lock:
            if not self._writing:
                self._close_connection()

    @property
    def pending(self) -> int:
        """Requests waiting for the next insert."""
        with self._lock:
            return len(self._queue)

    def _after_fork(self) -> None:
        # A forked process (a gunicorn worker) has the parent's object, not its connection:
        # kept, never closed here (closing would end the parent's session on the server).
        if self._pid != os.getpid():
            self._lock = threading.Lock()
            self._queue = deque()
            self._writing = False
            self._conn = None
            self._pid = os.getpid()

    def _lead(self) -> None:
        """Insert what is queued (this request's events first), then hand the leadership to
        the first request still queued, or give it up."""
        with self._lock:
            jobs: list[_Job] = []
            count = 0
            while self._queue and (
                not jobs or count + len(self._queue[0].events) <= MAX_EVENTS_PER_STATEMENT
            ):
                jobs.append(self._queue.popleft())
                count += len(jobs[-1].events)
        try:
            self._write(jobs)
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    if successor.wake.locked():
                        successor.wake.release()
                else:
                    self._writing = False

    def _write(self, jobs: list[_Job]) -> None:
        events = [event for job in jobs for event in job.events]
        try:
            rows = self._insert(events)
        except psycopg.Error as exc:
            logger.warning("Ingest insert failed (%s); %d requests answer 503", exc, len(jobs))
            self._close_connection()
            self._finish(jobs, _django_error(exc))
            return
        except BaseException as exc:  # a bug: every waiting request must still be answered
            logger.exception("Ingest writer failed")
            self._finish(jobs, exc)
            return
        # Each new row goes to the first request that sent its (source, message id); a later
        # request in the same statement with the same id sent a duplicate.
        new = {(str(source_id), message_id): row_id for row_id, source_id, message_id in rows}
        for job in jobs:
            job.ids = [
                row_id
                for event in job.events
                if (row_id := new.pop((event.source_id, event.message_id), None)) is not None
            ]
        self._finish(jobs, None)

    def _finish(self, jobs: list[_Job], error: BaseException | None) -> None:
        for job in jobs:
            job.error = error
            job.done = True
            if job.wake.locked():
                job.wake.release()

    def _insert(self, events: list[IncomingEvent]) -> list[tuple[int, Any, str]]:
        cursor = self._connection_cursor()
        timeout = settings.CDP_INGEST_DB_TIMEOUT_MS
        if timeout != self._timeout_ms:
            # For this connection's session: it serves nothing but this insert.
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, false), "
                "set_config('statement_timeout', %s, false)",
                [f"{timeout}ms", f"{timeout}ms"],
            )
            self._timeout_ms = timeout
            self.statements += 1
        # Autocommit: the server commits before it answers, so the rows read here are durable.
        cursor.execute(PG_INSERT_JSON_ROWS, [_rows_json(events)], prepare=True)
        self.statements += 1
        return cursor.fetchall()

    def _connection_cursor(self) -> psycopg.Cursor[Any]:
        """The connection's one cursor, reused by every insert (a cursor costs a little to
        make, and this runs once per request)."""
        if self._conn is None or self._conn.closed or self._cursor is None:
            params = connection.get_connection_params()
            for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
                params.pop(key, None)
            self._conn = psycopg.connect(**params, autocommit=True)
            self._cursor = self._conn.cursor()
            self._timeout_ms = None
        return self._cursor

    def _close_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:  # already broken: nothing to release
                logger.debug("Closing a broken ingest connection", exc_info=True)
            self._conn = None
            self._cursor = None


_writer = GroupWriter()


def group_writer() -> GroupWriter:
    return _writer


def group_commit_applies(events: Sequence[IncomingEvent]) -> bool:
    """Small requests on PostgreSQL outside a caller's transaction share a commit."""
    return (
        bool(settings.CDP_INGEST_GROUP_COMMIT)
        and len(events) <= settings.CDP_INGEST_GROUP_MAX_EVENTS
        and connection.vendor == "postgresql"
        and not connection.in_atomic_block
    )
