"""Celery tasks of destinations (the `destinations` queue): take ids, call a service."""

from __future__ import annotations

from celery import shared_task

from apps.destinations import services
from cdp.tasks import transient_retry


@shared_task(name=services.DELIVER_TASK, **transient_retry(8))
def deliver(destination_id: int) -> int:
    return services.destination_deliver(destination_id=destination_id)


@shared_task(name="apps.destinations.tasks.dispatch_due", **transient_retry(3))
def dispatch_due() -> int:
    return services.deliveries_dispatch_due()


@shared_task(name="apps.destinations.tasks.purge_log", **transient_retry(3))
def purge_log() -> int:
    return services.deliveries_purge()
