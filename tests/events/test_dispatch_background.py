"""CDP_DISPATCH_MODE "background": committed ids are published from a thread of the web
process, in batches; a broker failure leaves the events to the redispatcher; exit flushes."""

from __future__ import annotations

import logging
import runpy
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.events import dispatch, services
from apps.events.models import Event
from apps.pipeline.tasks import process_events
from cdp.celery import app as celery_app

BASE_DIR = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.005)


class Recorder:
    """A sender that records what it is asked to publish (or fails, when told to)."""

    def __init__(self) -> None:
        self.sent: list[list[int]] = []
        self.threads: list[str] = []
        self.fail = False
        self.lock = threading.Lock()

    def __call__(self, ids: Sequence[int]) -> bool:
        if self.fail:
            raise ConnectionError("broker down")
        with self.lock:
            self.sent.append(list(ids))
            self.threads.append(threading.current_thread().name)
        return True

    @property
    def ids(self) -> list[int]:
        return [i for batch in self.sent for i in batch]


def publisher(published: list[list[int]]) -> Callable[..., None]:
    """Stands for the processing task's publish (apply_async): records its ids."""

    def publish(args: list[Any], kwargs: Any = None, **options: Any) -> None:
        published.append(args[0])

    return publish


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_dispatcher(recorder: Recorder) -> Iterator[Callable[..., dispatch.Dispatcher]]:
    made: list[dispatch.Dispatcher] = []

    def make(interval: float = 0.05, max_ids: int = 1000) -> dispatch.Dispatcher:
        d = dispatch.Dispatcher(recorder, interval=interval, max_ids=max_ids)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()


def test_ids_of_many_submissions_are_published_together(
    make_dispatcher: Any, recorder: Recorder
) -> None:
    d = make_dispatcher(interval=0.2)
    for n in range(10):
        d.submit([2 * n, 2 * n + 1])
    wait_for(lambda: len(recorder.ids) == 20)
    assert recorder.sent == [list(range(20))]  # one publish, in the order submitted
    assert recorder.threads == ["cdp-dispatcher"]  # not the submitting thread


def test_a_full_task_is_published_without_waiting_for_the_interval(
    make_dispatcher: Any, recorder: Recorder
) -> None:
    d = make_dispatcher(interval=30, max_ids=5)
    started = time.monotonic()
    d.submit([1, 2, 3])
    d.submit([4, 5])
    wait_for(lambda: recorder.ids == [1, 2, 3, 4, 5])
    assert time.monotonic() - started < 5


def test_submit_returns_without_waiting_for_the_broker(
    make_dispatcher: Any, recorder: Recorder
) -> None:
    gate = threading.Event()
    slow = Recorder()

    def blocked_send(ids: Sequence[int]) -> bool:
        gate.wait(5)
        return slow(ids)

    d = dispatch.Dispatcher(blocked_send, interval=0.01, max_ids=1000)
    try:
        d.submit([1])
        time.sleep(0.05)  # the thread is now stuck in the broker
        d.submit([2])
        # Back while the publish is still stuck: had submit waited for the broker, the first
        # publish would have given up waiting (5 s) and been recorded by now.
        assert slow.ids == []
    finally:
        gate.set()
        d.stop()
    assert slow.ids == [1, 2]


def test_a_broker_failure_is_logged_and_the_thread_keeps_going(
    make_dispatcher: Any, recorder: Recorder, caplog: Any
) -> None:
    d = make_dispatcher(interval=0.01)
    recorder.fail = True
    with caplog.at_level(logging.ERROR, logger="apps.events.dispatch"):
        d.submit([1, 2])
        wait_for(lambda: "redispatcher will retry" in caplog.text)
    assert d.pending == 0  # dropped here: the events table keeps them for the redispatcher
    recorder.fail = False
    d.submit([3])
    wait_for(lambda: recorder.ids == [3])


def test_stop_publishes_what_is_waiting(make_dispatcher: Any, recorder: Recorder) -> None:
    d = make_dispatcher(interval=60)
    d.submit([7, 8])
    assert recorder.sent == []
    d.stop()
    assert recorder.sent == [[7, 8]]
    d.submit([9])  # after the stop (process exiting): published by the caller
    assert recorder.sent == [[7, 8], [9]]
    assert recorder.threads[-1] == threading.current_thread().name


def test_a_forked_child_forgets_its_parents_ids(
    make_dispatcher: Any, recorder: Recorder, monkeypatch: Any
) -> None:
    d = make_dispatcher(interval=60)
    d.submit([1])
    monkeypatch.setattr(dispatch.os, "getpid", lambda: -1)  # as if in a forked child
    d.submit([2])
    d.stop()
    assert recorder.ids == [2]


def test_gunicorn_worker_exit_hook_flushes_the_dispatcher(
    recorder: Recorder, monkeypatch: Any
) -> None:
    d = dispatch.Dispatcher(recorder, interval=60, max_ids=1000)
    monkeypatch.setattr(dispatch, "_dispatcher", d)
    d.submit([4, 2])
    config = runpy.run_path(str(BASE_DIR / "cdp" / "gunicorn.conf.py"))
    config["worker_exit"](object(), object())
    assert recorder.sent == [[4, 2]]


# --- the tracking path -------------------------------------------------------------------------


@pytest.fixture
def background(settings: Any, monkeypatch: Any) -> Iterator[list[list[int]]]:
    """Background mode with a broker (tasks not run in-process); published tasks recorded."""
    published: list[list[int]] = []
    settings.CDP_DISPATCH_MODE = "background"
    settings.CDP_DISPATCH_INTERVAL_MS = 20
    celery_app.conf.task_always_eager = False
    monkeypatch.setattr(process_events, "apply_async", publisher(published))
    monkeypatch.setattr(dispatch, "_dispatcher", None)
    yield published
    dispatch.dispatcher_stop()


def one_event(n: int) -> dict[str, Any]:
    return {"event_name": "page_view", "distinct_id": f"visitor-{n}", "message_id": f"m-{n}"}


def test_tracking_requests_hand_their_ids_to_the_dispatcher(
    tracker: Any, background: list[list[int]]
) -> None:
    for n in range(5):
        assert tracker.post(one_event(n)).status_code == 200
    wait_for(lambda: sum(len(t) for t in background) == 5)
    stored = sorted(Event.objects.values_list("id", flat=True))
    assert sorted(i for task in background for i in task) == stored
    assert len(background) < 5  # several requests per task


def test_a_request_does_not_publish_in_background_mode(
    tracker: Any, background: list[list[int]], monkeypatch: Any
) -> None:
    calls: list[str] = []
    real = dispatch.events_publish

    def spy(ids: Sequence[int]) -> bool:
        calls.append(threading.current_thread().name)
        return real(ids)

    monkeypatch.setattr(dispatch, "events_publish", spy)
    assert tracker.post(one_event(1)).status_code == 200
    wait_for(lambda: bool(background))
    assert calls == ["cdp-dispatcher"]


def test_eager_tasks_keep_the_inline_path(tracker: Any, settings: Any) -> None:
    """Embedded default and tests: the processing runs right after the commit, as before."""
    settings.CDP_DISPATCH_MODE = "background"
    assert celery_app.conf.task_always_eager
    assert tracker.post(one_event(1)).status_code == 200
    assert Event.objects.get().processed_at is not None


def test_inline_mode_publishes_in_the_request(
    tracker: Any, settings: Any, monkeypatch: Any
) -> None:
    published: list[list[int]] = []
    settings.CDP_DISPATCH_MODE = "inline"
    celery_app.conf.task_always_eager = False
    monkeypatch.setattr(process_events, "apply_async", publisher(published))
    assert tracker.post(one_event(1)).status_code == 200
    assert published == [[Event.objects.get().id]]


def test_events_a_failed_publish_dropped_are_redispatched(
    tracker: Any, background: list[list[int]], monkeypatch: Any, caplog: Any
) -> None:
    def broker_down(args: list[Any], kwargs: Any = None, **options: Any) -> None:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(process_events, "apply_async", broker_down)
    with caplog.at_level(logging.WARNING, logger="cdp.tasks"):
        for n in range(3):
            assert tracker.post(one_event(n)).status_code == 200
        wait_for(lambda: "the redispatcher will retry" in caplog.text)
    assert Event.objects.filter(processed_at__isnull=True).count() == 3
    monkeypatch.setattr(process_events, "apply_async", publisher(background))
    assert services.events_redispatch_unprocessed(older_than=timedelta(0)) == 3
    assert sorted(background[0]) == sorted(Event.objects.values_list("id", flat=True))


def test_a_tracking_request_does_not_query_the_source(
    tracker: Any, background: list[list[int]], django_assert_max_num_queries: Any
) -> None:
    assert tracker.post(one_event(0)).status_code == 200  # the write key is now cached
    with django_assert_max_num_queries(4) as queries:  # timeouts, insert (+ a savepoint)
        assert tracker.post(one_event(1)).status_code == 200
    assert isinstance(queries, CaptureQueriesContext)
    sqls = [q["sql"] for q in queries.captured_queries]
    assert not [s for s in sqls if "sources_eventsource" in s]
    assert len([s for s in sqls if "INSERT INTO" in s]) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_stores_in_one_pipeline_committed_before_the_answer(
    source: Any, background: list[list[int]], monkeypatch: Any, settings: Any
) -> None:
    """Outside a transaction a batch larger than group commit takes (here: over 1 event)
    sends the timeouts and the insert in one pipeline, one implicit transaction: committed
    when the request answers, and the timeouts don't outlive it."""
    settings.CDP_INGEST_GROUP_MAX_EVENTS = 1
    import psycopg
    from django.test import Client

    from apps.events import storage
    from tests.clients import TrackingClient

    pipelined: list[int] = []
    real = storage._pg_store_pipelined

    def spy(events: Any) -> list[int]:
        pipelined.append(len(events))
        return real(events)

    monkeypatch.setattr(storage, "_pg_store_pipelined", spy)
    client = TrackingClient(Client(), source.write_key)
    assert client.post({"batch": [one_event(1), one_event(2)]}).status_code == 200
    assert pipelined == [2]

    params = connection.get_connection_params()
    for name in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(name, None)
    with psycopg.connect(**params) as other:  # another session sees them: committed
        assert other.execute("SELECT count(*) FROM events_event").fetchone() == (2,)
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("0",)
    wait_for(lambda: bool(background))
