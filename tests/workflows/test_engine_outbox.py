"""The runs table is the outbox of workflow runs: processing records the runs it matches,
queued, in its own transaction; with Redis down they wait there, and once Redis is back the
periodic redispatch gets every run done, once. A run is claimed before it executes, so a
task delivered twice (or a redispatch racing the first delivery) runs it once.

A real redis-server (tests/redis_server.py) and, for the worker test, a real Celery worker
consuming it (PostgreSQL: see tests/events/test_processing_outbox.py for why not SQLite)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from django.db import transaction
from kombu import pools as kombu_pools

from apps.events import services as event_services
from apps.events.models import Event
from apps.pipeline import services as pipeline_services
from apps.workflows import services
from apps.workflows.models import NodeTrace, RunStatus, WorkflowRun
from apps.workflows.tasks import redispatch_queued_runs, run_rules
from cdp.celery import app as celery_app
from cdp.queues import queue_names
from tests.events.test_processing_outbox import _use_broker
from tests.factories import chain, node, profile_of, published, route, track
from tests.redis_server import RedisServer, redis_server_binary

pytestmark = pytest.mark.django_db(transaction=True)

needs_redis = pytest.mark.skipif(
    redis_server_binary() is None, reason="redis-server is not installed"
)

PEOPLE = ["ann", "bob", "cid", "dee"]
EVENTS_PER_PERSON = 2


@pytest.fixture
def broker(tmp_path: Any) -> Iterator[RedisServer]:
    """A throwaway Redis as the Celery broker: tasks are sent to it, not run in-process."""
    server = RedisServer(tmp_path)
    server.start()
    conf = celery_app.conf
    saved = conf.broker_url
    _use_broker(server.url)
    conf.task_always_eager = False
    try:
        yield server
    finally:
        server.stop()
        _use_broker(saved)
        # Producer pools closed with the throwaway broker stay in kombu's registry (keyed by
        # connection): drop them all, so later tests publish on fresh ones.
        kombu_pools.reset()


class Worker:
    """A real Celery worker (threads) consuming every queue, started again if a broker
    outage stopped it (as a process supervisor would)."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._worker: Any = None

    def ensure_running(self) -> None:
        if self._worker is not None and self._worker.exitcode is None:
            return
        self._worker = self._stack.enter_context(
            start_worker(
                celery_app,
                pool="threads",
                concurrency=2,
                perform_ping_check=False,
                queues=queue_names(),
                shutdown_timeout=30,
            )
        )

    def stop(self) -> None:
        self._stack.close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def counting_workflow() -> Any:
    graph = chain(
        node("n", "increment_trait", trait="signups"),
        node("t", "template", template="{{ event.properties.n }}", variable="n"),
    )
    return route(published(graph), "signup")


def track_while_down(tracker: Any) -> list[int]:
    """Track the load (the broker is down: processing is not queued), then process it as a
    worker does, broker still down. Returns the event ids."""
    for n in range(EVENTS_PER_PERSON):
        for person in PEOPLE:
            track(tracker, "signup", person, n=n)
    ids = list(Event.objects.order_by("id").values_list("id", flat=True))
    assert len(ids) == len(PEOPLE) * EVENTS_PER_PERSON
    assert not Event.objects.filter(processed_at__isnull=False).exists()
    assert pipeline_services.events_process(event_ids=ids) == len(ids)
    return ids


def runs_by_status() -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in WorkflowRun.objects.values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


# --- the outbox itself (SQLite and PostgreSQL) ----------------------------------------------------


@pytest.fixture
def unsent(monkeypatch: Any) -> list[list[int]]:
    """Tracked events are stored but their processing is not queued (the test processes them),
    and the run tasks processing queues are collected instead of sent."""
    sent: list[list[int]] = []
    monkeypatch.setattr(event_services, "events_publish", lambda event_ids: True)
    monkeypatch.setattr(
        run_rules, "apply_async", lambda args, kwargs=None, **options: sent.append(args[0])
    )
    return sent


def test_runs_are_recorded_queued_in_the_processing_transaction(
    tracker: Any, unsent: list[list[int]]
) -> None:
    rule = counting_workflow()
    track(tracker, "signup", "ann")
    event = Event.objects.get()
    with transaction.atomic():
        pipeline_services.events_process(event_ids=[event.pk])
        assert WorkflowRun.objects.filter(status=RunStatus.QUEUED).count() == 1
        assert unsent == []  # nothing is queued before the commit
        transaction.set_rollback(True)
    # Rolled back with processing: the event is still unprocessed and no run is recorded.
    assert not WorkflowRun.objects.exists()
    assert unsent == []

    pipeline_services.events_process(event_ids=[event.pk])

    run = WorkflowRun.objects.get()
    assert (run.status, run.event_ref, run.rule_id) == (RunStatus.QUEUED, event.pk, rule.pk)
    assert run.profile_id == profile_of("ann").pk
    assert unsent == [[run.pk]]  # queued once processing committed


def test_a_run_is_executed_once(tracker: Any, unsent: list[list[int]]) -> None:
    counting_workflow()
    track(tracker, "signup", "ann")
    pipeline_services.events_process(event_ids=list(Event.objects.values_list("id", flat=True)))
    run = WorkflowRun.objects.get()
    # Another worker claimed it: skipped.
    WorkflowRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    assert services.runs_execute(run_ids=[run.pk]) == 0
    WorkflowRun.objects.filter(pk=run.pk).update(status=RunStatus.QUEUED)
    assert services.runs_execute(run_ids=[run.pk]) == 1
    assert services.runs_execute(run_ids=[run.pk]) == 0  # a redelivered task
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.started_at is not None
    assert profile_of("ann").traits == {"signups": 1}
    assert NodeTrace.objects.filter(run=run).count() == 3


def test_a_run_whose_rule_was_disabled_since_the_match_is_dropped(
    tracker: Any, unsent: list[list[int]]
) -> None:
    rule = counting_workflow()
    track(tracker, "signup", "ann")
    pipeline_services.events_process(event_ids=list(Event.objects.values_list("id", flat=True)))
    services.rule_update(rule=rule, enabled=False)
    assert services.runs_execute(run_ids=unsent[0]) == 0
    assert not WorkflowRun.objects.exists()
    assert profile_of("ann").traits == {}


def test_the_run_redispatch_is_scheduled_for_celery_beat() -> None:
    schedule = celery_app.conf.beat_schedule.values()
    entry = next(e for e in schedule if e["task"] == "apps.workflows.tasks.redispatch_queued_runs")
    events = next(e for e in schedule if e["task"] == "apps.events.tasks.redispatch_unprocessed")
    assert entry["task"] in celery_app.tasks
    assert entry["schedule"] == events["schedule"]


@needs_redis
def test_with_redis_down_runs_wait_queued_and_the_redispatch_queues_them(
    tracker: Any, broker: RedisServer, settings: Any
) -> None:
    counting_workflow()
    broker.stop()

    track_while_down(tracker)

    total = len(PEOPLE) * EVENTS_PER_PERSON
    assert runs_by_status() == {RunStatus.QUEUED: total}
    settings.CDP_REDISPATCH_AFTER_SECONDS = 0
    assert services.runs_redispatch_queued() == 0  # still down: they stay queued
    broker.start()
    client = redis.Redis.from_url(broker.url)
    try:
        settings.CDP_REDISPATCH_AFTER_SECONDS = 3600
        assert services.runs_redispatch_queued() == 0  # not old enough: maybe on their way
        assert client.llen("workflows") == 0
        settings.CDP_REDISPATCH_AFTER_SECONDS = 0
        settings.CDP_WORKFLOW_DISPATCH_CHUNK = 5
        assert redispatch_queued_runs.apply().get() == total  # what celery beat triggers
        assert client.llen("workflows") == 2  # 8 runs in tasks of 5
    finally:
        client.close()
    # What the worker does with those tasks (the worker test below runs a real one).
    ids = list(WorkflowRun.objects.order_by("id").values_list("id", flat=True))
    assert services.runs_execute(run_ids=ids[:5]) + services.runs_execute(run_ids=ids) == total
    assert services.runs_execute(run_ids=ids) == 0
    assert runs_by_status() == {RunStatus.SUCCEEDED: total}
    assert {p: profile_of(p).traits["signups"] for p in PEOPLE} == dict.fromkeys(
        PEOPLE, EVENTS_PER_PERSON
    )
    assert services.runs_redispatch_queued() == 0


# --- with a real worker (PostgreSQL) --------------------------------------------------------------


@needs_redis
@pytest.mark.postgres
@pytest.mark.worker
def test_redis_down_loses_no_run_and_the_redispatch_gets_each_done_once_by_a_worker(
    tracker: Any, broker: RedisServer, settings: Any
) -> None:
    counting_workflow()
    worker = Worker()
    try:
        worker.ensure_running()
        broker.stop()  # what it held is lost with it

        event_ids = track_while_down(tracker)

        total = len(PEOPLE) * EVENTS_PER_PERSON
        assert runs_by_status() == {RunStatus.QUEUED: total}
        assert all(profile_of(p).traits == {} for p in PEOPLE)

        broker.start()
        worker.ensure_running()
        settings.CDP_REDISPATCH_AFTER_SECONDS = 0
        redispatch_queued_runs.delay()  # sent through the broker, as celery beat sends it

        wait_until(lambda: runs_by_status() == {RunStatus.SUCCEEDED: total}, "every run succeeded")
        # A late duplicate (the redispatch racing a first delivery) changes nothing.
        run_ids = list(WorkflowRun.objects.values_list("id", flat=True))
        run_rules.delay(run_ids)
        assert event_services.events_redispatch_unprocessed() == 0
        time.sleep(1.0)
    finally:
        worker.stop()
    assert runs_by_status() == {RunStatus.SUCCEEDED: total}
    assert WorkflowRun.objects.filter(event_ref__in=event_ids).count() == total
    assert {p: profile_of(p).traits["signups"] for p in PEOPLE} == dict.fromkeys(
        PEOPLE, EVENTS_PER_PERSON
    )
    # Each run executed once: one trace per node.
    assert NodeTrace.objects.count() == 3 * total
