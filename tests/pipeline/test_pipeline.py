"""The processing pipeline: queued by name from events, constant queries per batch, the task
names of the previous release still run."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.events import services as event_services
from apps.events.dispatch import PROCESS_EPHEMERAL_EVENTS, PROCESS_EVENTS
from apps.events.models import Event, Session
from apps.pipeline import services as pipeline_services
from apps.profiles.models import Profile
from cdp.celery import app as celery_app
from cdp.queues import queue_of
from tests.events.processing_helpers import visit

PREVIOUS_NAMES = ("apps.events.tasks.process_events", "apps.events.tasks.process_ephemeral_events")


@pytest.fixture
def stored(tracker: Any, monkeypatch: Any) -> Any:
    """Track events without queueing their processing: the test processes them."""
    monkeypatch.setattr(event_services, "events_publish", lambda event_ids: True)

    def store(*events: dict[str, Any]) -> list[int]:
        response = tracker.post({"batch": list(events)})
        assert response.status_code == 200, response.content
        return list(Event.objects.filter(processed_at__isnull=True).values_list("id", flat=True))

    return store


def _process(stored: Any, people: int, run: str) -> list[dict[str, Any]]:
    """Process a batch of one event for each of `people` new people; the queries it made."""
    ids = stored(*[visit("page_view", f"person-{run}-{n}") for n in range(people)])
    assert len(ids) == people
    with CaptureQueriesContext(connection) as captured:
        assert pipeline_services.events_process(event_ids=ids) == people
    return captured.captured_queries


def test_the_queries_of_a_batch_do_not_grow_with_its_events(stored: Any, settings: Any) -> None:
    """Processing one event and twenty events of twenty different people costs the same
    number of queries: every step works on the batch, not on each event."""
    # The routing rules table is re-read from the cache when its memo is this old: not
    # during this test (the warm-up reads it), however slow the machine.
    settings.CDP_SHARED_VERSION_CHECK_SECONDS = 3600
    _process(stored, 1, "warm-up")  # caches filled once per process (group types, ...)
    one = _process(stored, 1, "one")
    twenty = _process(stored, 20, "twenty")
    assert len(twenty) == len(one), "\n".join(q["sql"] for q in twenty)
    assert Profile.objects.count() == Session.objects.count() == 22
    assert not Event.objects.filter(processed_at__isnull=True).exists()


def test_events_queue_processing_by_the_pipeline_task_name() -> None:
    assert celery_app.tasks[PROCESS_EVENTS].name == PROCESS_EVENTS
    assert celery_app.tasks[PROCESS_EPHEMERAL_EVENTS].name == PROCESS_EPHEMERAL_EVENTS
    assert queue_of(PROCESS_EVENTS) == queue_of(PROCESS_EPHEMERAL_EVENTS) == "processing"


@pytest.mark.parametrize("name", PREVIOUS_NAMES)
def test_the_previous_task_names_are_routed_to_processing(name: str) -> None:
    assert name in celery_app.tasks
    assert celery_app.amqp.router.route({}, name)["queue"].name == "processing"


def test_a_message_queued_under_the_previous_name_still_processes(
    stored: Any,
) -> None:
    ids = stored(visit("signup", "ann"), visit("page_view", "bob"))
    assert celery_app.tasks[PREVIOUS_NAMES[0]].apply(args=[ids]).get() == 2
    assert not Event.objects.filter(processed_at__isnull=True).exists()
    assert set(Profile.objects.values_list("event_count", flat=True)) == {1}
