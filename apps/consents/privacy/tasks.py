"""Celery tasks of privacy requests (thin: ids in, a service call)."""

from __future__ import annotations

from celery import shared_task

from apps.consents.privacy import services
from cdp.tasks import transient_retry


@shared_task(**transient_retry())
def privacy_request_run(request_id: str, resume: bool = False) -> None:
    services.privacy_request_run(request_id=request_id, resume=resume)


@shared_task(**transient_retry())
def privacy_housekeeping() -> None:
    """Expired exports deleted; requests whose worker was lost (or never queued) run again."""
    services.privacy_exports_purge()
    services.privacy_requests_recover()
