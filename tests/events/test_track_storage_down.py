"""POST /api/track when storage can't take the write: a 503 to retry, and nothing half-stored.

The events table is really locked by another database connection (no mocks): an exclusive
SQLite transaction, or LOCK TABLE on PostgreSQL with the ingest lock timeout."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection

from apps.events.models import Event
from tests.events.track_helpers import error, event, ok, stored_names

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def _sqlite_locked() -> Iterator[None]:
    name = connection.settings_dict["NAME"]
    options = connection.settings_dict["OPTIONS"]
    saved_timeout = options.get("timeout")
    if not connection.is_in_memory_db():
        # A file database waits the busy timeout (20 s by default) before giving up: make the
        # next connection wait a fraction of a second. (A shared in-memory database reports
        # the lock at once, and closing its last connection would drop it.)
        options["timeout"] = 0.2
        connection.close()
    other = sqlite3.connect(name, uri=True, timeout=0.2, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()
        options["timeout"] = saved_timeout
        if not connection.is_in_memory_db():
            connection.close()


@contextmanager
def _postgres_locked() -> Iterator[None]:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    with psycopg.connect(**params) as other:
        other.execute("LOCK TABLE events_event IN ACCESS EXCLUSIVE MODE")
        yield
        other.rollback()


@contextmanager
def events_table_locked() -> Iterator[None]:
    locked = _postgres_locked if connection.vendor == "postgresql" else _sqlite_locked
    with locked():
        yield


@pytest.fixture(autouse=True)
def _short_ingest_timeout(settings):
    settings.CDP_INGEST_DB_TIMEOUT_MS = 200


def test_a_locked_events_table_is_503_with_retry_after_and_nothing_stored(tracker):
    batch = [event(f"e{i}", f"u{i}", message_id=f"m{i}") for i in range(5)]

    with events_table_locked():
        response = tracker.post({"batch": batch})

    err = error(response, 503, "storage_unavailable")
    assert "nothing was stored" in err["message"]
    assert int(response["Retry-After"]) > 0
    assert not Event.objects.exists()


def test_the_retry_after_a_503_stores_the_batch_once(tracker):
    batch = [event(f"e{i}", f"u{i}", message_id=f"m{i}") for i in range(5)]
    with events_table_locked():
        error(tracker.post({"batch": batch}), 503, "storage_unavailable")

    body = ok(tracker.post({"batch": batch}))

    assert (body["accepted"], body["duplicates"]) == (5, 0)
    assert stored_names() == [f"e{i}" for i in range(5)]
    assert Event.objects.filter(processed_at__isnull=True).count() == 0


def test_a_503_keeps_the_cors_headers_for_browsers(tracker):
    with events_table_locked():
        response = tracker.post(event(), HTTP_ORIGIN="https://shop.example.com")

    error(response, 503, "storage_unavailable")
    assert response["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert not Event.objects.exists()


def test_bad_input_is_still_a_4xx_while_storage_is_down(tracker):
    ok(tracker.post(event("before")))  # the write key is cached, as on a busy server

    with events_table_locked():
        response = tracker.post({"batch": [{"event_name": "no user"}]})

    error(response, 400, "no_valid_event")
    assert stored_names() == ["before"]


@pytest.mark.postgres
def test_the_ingest_timeout_is_only_for_the_ingest_transaction(tracker):
    ok(tracker.post(event()))

    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "0"
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"
