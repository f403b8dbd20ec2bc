"""Celery tasks for events: thin wrappers that take ids and call a service.

Processing itself runs in apps.pipeline.tasks (queued here by name)."""

from __future__ import annotations

from celery import shared_task

from apps.events import services


@shared_task
def redispatch_unprocessed() -> int:
    return services.events_redispatch_unprocessed()
