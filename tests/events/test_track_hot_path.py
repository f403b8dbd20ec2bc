"""The single-event path: what one event costs in queries, group commit of requests that arrive
together (PostgreSQL), and the write-key cache following source changes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client

from apps.events import dispatch, groupcommit
from apps.events.groupcommit import group_writer
from apps.events.models import Event
from apps.pipeline.tasks import process_events
from apps.sources import selectors as source_selectors
from apps.sources.models import EventSource
from cdp.celery import app as celery_app
from tests.clients import TrackingClient
from tests.events.track_helpers import error, event, ok


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.005)


def other_session() -> psycopg.Connection[Any]:
    params = connection.get_connection_params()
    for name in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(name, None)
    return psycopg.connect(**params)


@pytest.fixture
def background(settings: Any, monkeypatch: Any) -> Iterator[list[list[int]]]:
    """Production's dispatch (a broker, the ids handed to the background dispatcher), with
    the published processing tasks recorded instead of sent."""
    published: list[list[int]] = []
    settings.CDP_DISPATCH_MODE = "background"
    settings.CDP_DISPATCH_INTERVAL_MS = 20
    celery_app.conf.task_always_eager = False

    def publish(args: list[Any], kwargs: Any = None, **options: Any) -> None:
        published.append(args[0])

    monkeypatch.setattr(process_events, "apply_async", publish)
    monkeypatch.setattr(dispatch, "_dispatcher", None)
    yield published
    dispatch.dispatcher_stop()


@pytest.fixture
def writer() -> Any:
    yield group_writer()
    group_writer().close()  # the test database is dropped at the end: hold no connection


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_event_is_one_statement_and_no_query_on_the_request_connection(
    tracker: TrackingClient, writer: Any, background: Any, django_assert_num_queries: Any
) -> None:
    ok(tracker.post(event("warm_up", message_id="w")))  # the key cached, the session set up
    sent = writer.statements
    with django_assert_num_queries(0):
        body = ok(tracker.post(event("signed_up", message_id="m1")))
    assert body["accepted"] == 1
    assert writer.statements - sent == 1  # the insert, which commits
    with other_session() as other:  # committed when the answer came
        names = other.execute("SELECT event_name FROM events_event ORDER BY id").fetchall()
    assert names == [("warm_up",), ("signed_up",)]
    wait_for(lambda: len([i for task in background for i in task]) == 2)  # processing queued


def test_one_event_in_a_transaction_or_on_sqlite_is_one_insert(
    tracker: TrackingClient, background: Any, django_assert_max_num_queries: Any
) -> None:
    ok(tracker.post(event("warm_up", message_id="w")))
    # The insert, and inside a caller's transaction its timeouts and a savepoint pair.
    with django_assert_max_num_queries(4) as queries:
        ok(tracker.post(event("signed_up", message_id="m1")))
    statements = [q["sql"] for q in queries.captured_queries]
    assert len([s for s in statements if "INSERT INTO" in s]) == 1
    assert not [s for s in statements if "sources_eventsource" in s]


def _post_in_threads(
    write_key: str, payloads: list[dict[str, Any]]
) -> tuple[list[Any], list[threading.Thread]]:
    """Start one SDK client per payload, each in its own thread (as gunicorn's threads)."""
    responses: list[Any] = [None] * len(payloads)

    def post(i: int) -> None:
        client = TrackingClient(Client(), write_key)
        responses[i] = client.post(payloads[i])
        connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(payloads))]
    for thread in threads:
        thread.start()
    return responses, threads


def _inserts_waiting_on_a_lock(watcher: psycopg.Connection[Any]) -> int:
    row = watcher.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND pid <> pg_backend_pid() AND query LIKE '%%INSERT INTO events_event%%'"
    ).fetchone()
    watcher.commit()
    return int(row[0]) if row else 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_requests_waiting_on_an_insert_share_the_next_one_and_each_gets_its_answer(
    source: EventSource, writer: Any
) -> None:
    TrackingClient(Client(), source.write_key).post(event("warm_up", message_id="w"))
    payloads = [event("clicked", f"u{i}", message_id=f"m{i}") for i in range(8)]
    payloads.append(event("clicked", "u0", message_id="m0"))  # a retry of the first one
    with other_session() as other, other_session() as watcher:
        # A first request's insert waits on the lock; the requests behind it queue up.
        other.execute("LOCK TABLE events_event IN SHARE MODE")
        sent = writer.statements
        first, first_threads = _post_in_threads(source.write_key, [event("first", "u9")])
        wait_for(lambda: _inserts_waiting_on_a_lock(watcher) == 1)
        responses, threads = _post_in_threads(source.write_key, payloads)
        wait_for(lambda: writer.pending == len(payloads))
        other.rollback()
    for thread in first_threads + threads:
        thread.join(10)
    assert ok(first[0])["accepted"] == 1
    bodies = [ok(r) for r in responses]
    assert writer.statements - sent == 2  # the blocked insert, then all the others at once
    assert sum(b["accepted"] for b in bodies) == 8
    assert sum(b["duplicates"] for b in bodies) == 1
    stored = Event.objects.filter(event_name="clicked").values_list("message_id", flat=True)
    assert sorted(stored) == [f"m{i}" for i in range(8)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_request_that_gave_up_waiting_does_not_stall_the_ones_after_it(
    source: EventSource, writer: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queued request that times out leaves the queue: the leadership is never handed to a
    request nobody waits for (which would leave every later request waiting)."""
    settings.CDP_INGEST_DB_TIMEOUT_MS = 5000
    monkeypatch.setattr(groupcommit, "WAIT_MARGIN_SECONDS", -4.5)  # queued requests wait 0.5 s
    with other_session() as other, other_session() as watcher:
        other.execute("LOCK TABLE events_event IN SHARE MODE")
        first, first_threads = _post_in_threads(source.write_key, [event("first", "u1")])
        wait_for(lambda: _inserts_waiting_on_a_lock(watcher) == 1)
        queued, queued_threads = _post_in_threads(source.write_key, [event("queued", "u2")])
        for thread in queued_threads:
            thread.join(10)
        error(queued[0], 503, "storage_unavailable")
        other.rollback()
    for thread in first_threads:
        thread.join(10)
    ok(first[0])
    after = TrackingClient(Client(), source.write_key).post(event("after", message_id="a"))
    ok(after)
    assert sorted(Event.objects.values_list("event_name", flat=True)) == ["after", "first"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_failed_shared_insert_answers_503_to_every_request_in_it_and_stores_nothing(
    source: EventSource, writer: Any, settings: Any
) -> None:
    settings.CDP_INGEST_DB_TIMEOUT_MS = 300
    payloads = [event("clicked", f"u{i}", message_id=f"m{i}") for i in range(5)]
    with other_session() as other:
        other.execute("LOCK TABLE events_event IN ACCESS EXCLUSIVE MODE")
        responses, threads = _post_in_threads(source.write_key, payloads)
        for thread in threads:
            thread.join(10)
        other.rollback()
    for response in responses:
        error(response, 503, "storage_unavailable")
        assert response["Retry-After"]
    assert not Event.objects.exists()
    # The writer recovers: the next request is stored.
    ok(TrackingClient(Client(), source.write_key).post(event("after", message_id="a")))
    assert list(Event.objects.values_list("message_id", flat=True)) == ["a"]


@pytest.mark.django_db(transaction=True)
def test_a_source_disabled_by_a_plain_save_is_refused_at_once(
    source: EventSource, tracker: TrackingClient
) -> None:
    ok(tracker.post(event(message_id="m1")))  # the key is cached now
    source.enabled = False
    source.save()  # as the admin's change form and the API do: no service called
    error(tracker.post(event(message_id="m2")), 401, "source_disabled")


@pytest.mark.django_db(transaction=True)
def test_a_change_made_by_another_process_reaches_this_one_through_the_shared_cache(
    source: EventSource, tracker: TrackingClient, settings: Any
) -> None:
    settings.CDP_SOURCE_CACHE_SECONDS = 3600  # only the signal can refresh it
    settings.CDP_SHARED_VERSION_CHECK_SECONDS = 0
    ok(tracker.post(event(message_id="m1")))
    # Another process disables the source: the row changes, its services move the shared
    # version (this process's own cache entry is left alone, as it would be).
    EventSource.objects.filter(pk=source.pk).update(enabled=False)
    ok(tracker.post(event(message_id="m2")))  # still cached here
    cache.set(source_selectors.SOURCES_VERSION.key, "moved by another process")
    error(tracker.post(event(message_id="m3")), 401, "source_disabled")
