"""Celery tasks for events: thin wrappers that take ids and call a service."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.events import services
from apps.events.incoming import IncomingEvent

# Only transient database failures are retried; anything else is a bug and fails loudly.
_TRANSIENT = (OperationalError, InterfaceError)


@shared_task(
    autoretry_for=_TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=120,
    max_retries=8,
)
def process_events(event_ids: list[int]) -> int:
    return services.events_process(event_ids=event_ids)


@shared_task(
    autoretry_for=_TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=120,
    max_retries=8,
)
def process_ephemeral_events(events: list[dict[str, Any]]) -> int:
    return services.events_process_ephemeral(
        events=[IncomingEvent.from_task_payload(e) for e in events]
    )


@shared_task
def redispatch_unprocessed() -> int:
    return services.events_redispatch_unprocessed()
