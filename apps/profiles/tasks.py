"""Celery tasks of profiles: thin wrappers that call a service."""

from __future__ import annotations

from celery import shared_task

from apps.profiles.services.receipts import operation_receipts_purge


@shared_task
def purge_operation_receipts() -> int:
    """Receipts of people and group operations past their retention window are deleted."""
    return operation_receipts_purge()
