"""Celery tasks of consents (thin: they call a service)."""

from __future__ import annotations

from celery import shared_task

from apps.consents import services


@shared_task(name="apps.consents.tasks.revoke_expired_consents")
def revoke_expired_consents() -> int:
    """Beat: revoke grants past their expiry (each emits consent_revoked)."""
    return services.consents_revoke_expired()
