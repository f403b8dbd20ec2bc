"""Group commit of small ingest requests: one insert and one commit for the requests of a web
process that arrive together (PostgreSQL).

A one-event request used to pay a whole transaction of its own: a pooled connection checked
out and returned, the per-transaction timeouts, the insert and a durable commit. Here the
request hands its events to the process's writer thread and waits; the writer takes every
request waiting at that moment, inserts their events in one statement on its own autocommit
connection (the commit happens before the server answers it) and wakes each request with the
ids of its new rows. So "2xx = committed" and "nothing half-stored" hold as before: a request
answers after the commit that holds its events, and a failed statement stores none of the
requests it carried, each of which answers 503.

The writer's connection is used only for this insert, so its session timeouts
(CDP_INGEST_DB_TIMEOUT_MS) are set once, not per request, and it is closed after a moment
without work. Large batches keep the ordinary path: one commit already serves their many
events.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django import db
from django.conf import settings
from django.db import connection

from apps.events.incoming import IncomingEvent
from apps.events.storage import PG_INSERT_RETURNING_KEYS, columns_of

logger = logging.getLogger(__name__)

# Seconds without work after which the writer closes its connection (so an idle web process
# holds none, and a test database can be dropped).
IDLE_CLOSE_SECONDS = 2.0
# Events one statement carries at most: the requests of a burst, not an unbounded array.
MAX_EVENTS_PER_STATEMENT = 2000
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
    # Released by the writer when the job is done: a bare lock, cheaper to hand over than an
    # Event (this is paid per request).
    done: threading.Lock = field(default_factory=_held_lock)
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


class GroupWriter:
    """One per web process: a thread that inserts what the request threads hand it."""

    def __init__(self) -> None:
        self._start_lock = threading.Lock()
        self._pending: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._io = threading.Lock()  # held while the connection is in use
        self._pid = 0
        self._conn: psycopg.Connection[Any] | None = None
        self._timeout_ms: int | None = None
        self._inherited: psycopg.Connection[Any] | None = None
        self.statements = 0  # statements sent, for the query-count test

    def store(self, events: Sequence[IncomingEvent]) -> list[int]:
        """Insert the events with whatever else is waiting; return the ids of the new rows
        once they are committed. Raises a django.db error when nothing was stored."""
        job = _Job(events)
        self._start_if_needed()
        self._pending.put(job)
        # The statement gives up after the ingest timeout; a connect after the connect
        # timeout: past both (and a margin) the writer is stuck, and the client retries.
        wait = (settings.CDP_INGEST_DB_TIMEOUT_MS or 30_000) / 1000 + 10
        if not job.done.acquire(timeout=wait):
            raise db.OperationalError("The ingest writer did not answer in time")
        if job.error is not None:
            raise job.error
        return job.ids

    def close(self) -> None:
        """Close the connection now (tests, before a database is dropped); the next request
        opens a new one."""
        with self._io:
            self._close_connection()

    @property
    def pending(self) -> int:
        """Requests waiting for the next insert."""
        return self._pending.qsize()

    def _start_if_needed(self) -> None:
        # A forked process (a gunicorn worker) has the parent's object but not its thread.
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            # The parent's connection and lock are not this process's to use.
            self._pending = queue.SimpleQueue()
            self._io = threading.Lock()
            # Kept, never closed here: closing would end the parent's session on the server.
            self._inherited = self._conn
            self._conn = None
            thread = threading.Thread(target=self._run, name="cdp-ingest-writer", daemon=True)
            thread.start()
            self._pid = os.getpid()

    def _run(self) -> None:
        carried: _Job | None = None
        while True:
            if carried is None:
                try:
                    carried = self._pending.get(timeout=IDLE_CLOSE_SECONDS)
                except queue.Empty:
                    with self._io:
                        self._close_connection()
                    continue
            jobs, carried = self._take(carried)
            with self._io:
                self._write(jobs)

    def _take(self, first: _Job) -> tuple[list[_Job], _Job | None]:
        """The first job and those waiting behind it, up to a statement's worth of events;
        the job that did not fit is carried to the next statement."""
        jobs, count = [first], len(first.events)
        while True:
            try:
                job = self._pending.get_nowait()
            except queue.Empty:
                return jobs, None
            if count + len(job.events) > MAX_EVENTS_PER_STATEMENT:
                return jobs, job
            jobs.append(job)
            count += len(job.events)

    def _write(self, jobs: list[_Job]) -> None:
        events = [event for job in jobs for event in job.events]
        try:
            rows = self._insert(events)
        except psycopg.Error as exc:
            logger.warning("Ingest insert failed (%s); %d requests answer 503", exc, len(jobs))
            self._close_connection()
            error = _django_error(exc)
            for job in jobs:
                job.error = error
                job.done.release()
            return
        except BaseException as exc:  # a bug: every waiting request must still be answered
            logger.exception("Ingest writer failed")
            for job in jobs:
                job.error = exc
                job.done.release()
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
            job.done.release()

    def _insert(self, events: list[IncomingEvent]) -> list[tuple[int, Any, str]]:
        conn = self._connection()
        timeout = settings.CDP_INGEST_DB_TIMEOUT_MS
        if timeout != self._timeout_ms:
            # For this connection's session: it serves nothing but this insert.
            conn.execute(
                "SELECT set_config('lock_timeout', %s, false), "
                "set_config('statement_timeout', %s, false)",
                [f"{timeout}ms", f"{timeout}ms"],
            )
            self._timeout_ms = timeout
            self.statements += 1
        # Autocommit: the server commits before it answers, so the rows read here are durable.
        cursor = conn.execute(PG_INSERT_RETURNING_KEYS, columns_of(events))
        self.statements += 1
        return cursor.fetchall()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            params = connection.get_connection_params()
            for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
                params.pop(key, None)
            self._conn = psycopg.connect(**params, autocommit=True)
            self._timeout_ms = None
        return self._conn

    def _close_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:  # already broken: nothing to release
                logger.debug("Closing a broken ingest connection", exc_info=True)
            self._conn = None


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
