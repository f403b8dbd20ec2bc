"""The events table is the outbox: with Redis stopped during a load, tracking requests still
answer 2xx, nothing is lost, and once Redis is back the periodic redispatch gets every event
processed, once. Ephemeral sources are processed without being stored.

A real redis-server (started here on a free port, killed and started again) and, for the tests
that process, a real Celery worker consuming it. Skipped when redis-server is not installed.
The worker tests need PostgreSQL: SQLite's test database lives in memory, and a worker
thread writing to it while the test's connection is open fails with "database table is
locked" instead of waiting (a deployed SQLite file has a busy timeout; the embedded default
has no worker at all, it runs tasks in-process)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from django.test import Client

from apps.events import services
from apps.events.dispatch import dispatcher
from apps.events.models import Event, Session
from apps.events.tasks import redispatch_unprocessed
from apps.pipeline.tasks import process_events
from apps.profiles.models import Profile
from apps.sources import services as source_services
from cdp.celery import app as celery_app
from tests.clients import TrackingClient, broker_pools_reset
from tests.events.processing_helpers import SAFARI_IPHONE, visit
from tests.redis_server import RedisServer, redis_server_binary

pytestmark = [
    # On SQLite this module leaves the in-process Celery state such that two later modules
    # (test_segmentio_sdk, test_track_storage_down) see their tasks unprocessed; until that is
    # found, it runs with the production parts only.
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not installed"),
]

PEOPLE = 6
EVENTS_PER_REQUEST = 12
REQUESTS_PER_PHASE = 8


def _use_broker(url: str) -> None:
    """Point the Celery app at another broker; connections to the old one are dropped."""
    celery_app.conf.broker_url = url
    broker_pools_reset()


@pytest.fixture
def redis_server(tmp_path: Any) -> Iterator[RedisServer]:
    """A throwaway Redis as the Celery broker; tasks are sent to it, not run in-process."""
    server = RedisServer(tmp_path)
    server.start()
    conf = celery_app.conf
    saved = (conf.broker_url, conf.task_always_eager)
    _use_broker(server.url)
    conf.task_always_eager = False
    try:
        yield server
    finally:
        server.stop()
        _use_broker(saved[0])
        conf.task_always_eager = saved[1]


class SupervisedWorker:
    """A real Celery worker (threads pool) consuming the broker, started again when it dies,
    as a process supervisor (systemd's Restart=always) restarts `celery worker`.

    Celery 5.7 / kombu 5.7 can stop a worker on a broker outage ("Unrecoverable error:
    AttributeError ... 'hostname'", while restoring unacknowledged messages): the outbox must
    make up for that too."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._worker: Any = None
        self.restarts = 0

    def start(self) -> None:
        self._worker = self._stack.enter_context(
            start_worker(
                celery_app,
                pool="threads",
                concurrency=2,
                perform_ping_check=False,
                queues=["default", "processing"],
                shutdown_timeout=30,
            )
        )

    def ensure_running(self) -> None:
        if self._worker is not None and self._worker.exitcode is None:
            return
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        self._stack.close()


@pytest.fixture
def worker(redis_server: RedisServer) -> Iterator[SupervisedWorker]:
    supervised = SupervisedWorker()
    supervised.start()
    try:
        yield supervised
    finally:
        supervised.stop()


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def _request(n: int) -> dict[str, Any]:
    """Request n of the load: a batch spread over the people, a minute after request n-1."""
    return {
        "batch": [
            visit(
                f"r{n}",
                f"person-{i % PEOPLE}",
                minutes=n,
                message_id=f"r{n}-{i}",
                context={"page": {"url": f"https://shop.example/p/{i}?utm_campaign=load"}},
            )
            for i in range(EVENTS_PER_REQUEST)
        ]
    }


def _send_phase(tracker: TrackingClient, requests: range) -> list[float]:
    """Send the requests; each must be a 2xx accepting its whole batch. Returns their times."""
    took = []
    for n in requests:
        started = time.monotonic()
        response = tracker.post(_request(n))
        took.append(time.monotonic() - started)
        assert 200 <= response.status_code < 300, response.content
        assert response.json()["accepted"] == EVENTS_PER_REQUEST
    return took


def _publish_attempted() -> None:
    """Wait until this process's background dispatcher has tried to publish every id handed to
    it: while Redis is down those publishes fail, and must not succeed later by racing the
    restart (the events would not be waiting in the outbox as the tests assume)."""
    dispatcher().flush()


def _unprocessed(requests: range) -> int:
    names = [f"r{n}" for n in requests]
    return Event.objects.filter(event_name__in=names, processed_at__isnull=True).count()


# --- without a worker: the outbox itself (SQLite and PostgreSQL) --------------------------------


def test_with_redis_down_requests_are_2xx_and_the_events_wait_in_the_outbox(
    tracker, redis_server, settings
):
    redis_server.stop()

    took = _send_phase(tracker, range(3))

    assert max(took) < 10, f"a request hung on the missing broker: {took}"
    assert Event.objects.count() == 3 * EVENTS_PER_REQUEST
    assert _unprocessed(range(3)) == 3 * EVENTS_PER_REQUEST
    # The redispatch can't queue them either: it says so (0), and they stay in the outbox.
    settings.CDP_REDISPATCH_AFTER_SECONDS = 0
    assert services.events_redispatch_unprocessed() == 0
    assert _unprocessed(range(3)) == 3 * EVENTS_PER_REQUEST


def test_once_redis_is_back_the_redispatch_queues_only_events_old_enough(
    tracker, redis_server, settings
):
    redis_server.stop()
    _send_phase(tracker, range(2))
    _publish_attempted()
    redis_server.start()
    broker = redis.Redis.from_url(redis_server.url)

    # Within CDP_REDISPATCH_AFTER_SECONDS an event may still be on its way: left alone.
    assert services.events_redispatch_unprocessed() == 0
    assert broker.llen("processing") == 0

    settings.CDP_REDISPATCH_AFTER_SECONDS = 0
    settings.CDP_PROCESS_BATCH_SIZE = EVENTS_PER_REQUEST
    redispatch_unprocessed.apply()  # what celery beat triggers

    assert broker.llen("processing") == 2  # both requests' events, in batches of 12
    broker.close()


def test_the_redispatch_is_scheduled_for_celery_beat():
    entry = next(
        e
        for e in celery_app.conf.beat_schedule.values()
        if e["task"] == "apps.events.tasks.redispatch_unprocessed"
    )
    assert entry["task"] in celery_app.tasks
    assert 0 < float(entry["schedule"]) <= 300


# --- with a real worker (PostgreSQL) ------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.postgres
def test_redis_down_during_a_load_loses_nothing_and_the_redispatch_processes_it_all(
    tracker, worker, redis_server, settings
):
    before, during, after = (
        range(0, REQUESTS_PER_PHASE),
        range(REQUESTS_PER_PHASE, 2 * REQUESTS_PER_PHASE),
        range(2 * REQUESTS_PER_PHASE, 3 * REQUESTS_PER_PHASE),
    )
    total = 3 * REQUESTS_PER_PHASE * EVENTS_PER_REQUEST

    _send_phase(tracker, before)
    redis_server.stop()  # what it held is lost with it, as in a crash without persistence
    took = _send_phase(tracker, during)
    _publish_attempted()
    redis_server.start()
    worker.ensure_running()
    _send_phase(tracker, after)

    assert max(took) < 10, f"a request hung on the missing broker: {took}"
    # Every accepted event is stored; those sent during the outage wait in the outbox.
    assert Event.objects.count() == total
    assert _unprocessed(during) == len(during) * EVENTS_PER_REQUEST

    # The periodic task, sent through the broker as celery beat sends it.
    settings.CDP_REDISPATCH_AFTER_SECONDS = 0
    redispatch_unprocessed.delay()

    _wait_until(
        lambda: not Event.objects.filter(processed_at__isnull=True).exists(),
        "the redispatched events are processed",
    )
    # Processed once each: the counts of every person and session add up exactly.
    per_person = Counter(Event.objects.values_list("distinct_id", flat=True))
    assert len(per_person) == PEOPLE
    profiles = Profile.objects.prefetch_related("identities")
    assert {p.identities.get().distinct_id: p.event_count for p in profiles} == per_person
    sessions = list(Session.objects.all())
    assert len(sessions) == PEOPLE  # a minute between requests: one visit each
    assert {s.distinct_id: s.event_count for s in sessions} == per_person
    assert all(s.utm_campaign == "load" for s in sessions)
    assert not Event.objects.filter(session__isnull=True).exists()


@pytest.mark.worker
@pytest.mark.postgres
def test_a_redelivered_batch_is_not_processed_twice(tracker, worker):
    _send_phase(tracker, range(1))
    _wait_until(lambda: _unprocessed(range(1)) == 0, "the batch is processed")
    ids = list(Event.objects.values_list("id", flat=True))

    # A redispatch that raced the first delivery brings the same ids again.
    process_events.delay(ids)
    assert process_events.apply(args=[ids]).get() == 0

    assert sum(Profile.objects.values_list("event_count", flat=True)) == EVENTS_PER_REQUEST
    assert sum(Session.objects.values_list("event_count", flat=True)) == EVENTS_PER_REQUEST


# --- ephemeral sources --------------------------------------------------------------------------


@pytest.fixture
def ephemeral_tracker(transactional_db: None) -> TrackingClient:
    live = source_services.source_create(name="Live screens", ephemeral=True)
    return TrackingClient(Client(), live.write_key)


@pytest.mark.worker
@pytest.mark.postgres
def test_an_ephemeral_source_is_processed_by_the_worker_but_not_stored(ephemeral_tracker, worker):
    batch = [
        visit("screen_view", "kiosk-user", minutes=0, context={"user_agent": SAFARI_IPHONE}),
        visit("tap", "kiosk-user", minutes=1),
        visit("tap", "other-user", minutes=1),
    ]
    response = ephemeral_tracker.post({"batch": batch})

    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 3
    _wait_until(
        lambda: Profile.objects.filter(event_count__gt=0).count() == 2,
        "the worker processes the ephemeral events",
    )
    assert not Event.objects.exists()
    sessions = {s.distinct_id: s for s in Session.objects.all()}
    assert {d: s.event_count for d, s in sessions.items()} == {"kiosk-user": 2, "other-user": 1}
    assert sessions["kiosk-user"].device_type == "mobile"
    counts = sorted(Profile.objects.values_list("event_count", "session_count"))
    assert counts == [(1, 1), (2, 1)]


def test_an_ephemeral_source_answers_503_while_the_broker_is_down(ephemeral_tracker, redis_server):
    """Nothing is stored for it, so nothing could be redispatched: the client must retry."""
    redis_server.stop()

    response = ephemeral_tracker.post(visit("tap", "kiosk-user"))

    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "processing_unavailable"
    assert int(response["Retry-After"]) > 0
    assert not Event.objects.exists()
    assert not Session.objects.exists()
