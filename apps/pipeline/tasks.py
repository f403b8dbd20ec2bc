"""Celery tasks of the processing pipeline (the `processing` queue): take ids, call a service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.events.dispatch import PROCESS_EPHEMERAL_EVENTS, PROCESS_EVENTS
from apps.events.incoming import IncomingEvent
from apps.pipeline import services
from cdp.tasks import transient_retry


@shared_task(name=PROCESS_EVENTS, **transient_retry(8))
def process_events(event_ids: list[int]) -> int:
    return services.events_process(event_ids=event_ids)


@shared_task(name=PROCESS_EPHEMERAL_EVENTS, **transient_retry(8))
def process_ephemeral_events(events: list[dict[str, Any]]) -> int:
    return services.events_process_ephemeral(
        events=[IncomingEvent.from_task_payload(e) for e in events]
    )


# The names these tasks had in apps.events.tasks: messages the previous release queued still
# run. Drop them in the release after the one that moved processing to apps.pipeline.
@shared_task(name="apps.events.tasks.process_events", **transient_retry(8))
def process_events_previous_name(event_ids: list[int]) -> int:
    return services.events_process(event_ids=event_ids)


@shared_task(name="apps.events.tasks.process_ephemeral_events", **transient_retry(8))
def process_ephemeral_events_previous_name(events: list[dict[str, Any]]) -> int:
    return process_ephemeral_events(events)
