"""Celery tasks for workflows (the `workflows` queue): thin wrappers that call a service."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.workflows import services

# Only transient database failures are retried; a run's own failures are recorded on the run.
_TRANSIENT = (OperationalError, InterfaceError)


@shared_task(autoretry_for=_TRANSIENT, retry_backoff=2, retry_backoff_max=120, max_retries=8)
def run_rules(run_ids: list[int]) -> int:
    """Execute queued runs (recorded by processing); runs already claimed are skipped."""
    return services.runs_execute(run_ids=run_ids)


@shared_task
def redispatch_queued_runs() -> int:
    return services.runs_redispatch_queued()


@shared_task(autoretry_for=_TRANSIENT, retry_backoff=2, retry_backoff_max=120, max_retries=8)
def resume_run(run_id: int) -> None:
    services.run_resume(run_id=run_id)


@shared_task
def resume_due_runs() -> int:
    return services.runs_resume_due()


@shared_task
def purge_runs() -> int:
    return services.runs_purge()
