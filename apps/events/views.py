"""The native tracking endpoint, POST /api/track."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from apps.events import services
from apps.events.tracking import check_rate, json_response, tracking_endpoint
from apps.events.wire import native
from apps.events.wire.base import Envelope
from apps.sources.models import EventSource
from cdp.errors import DomainError


@tracking_endpoint
def track(
    request: HttpRequest, payload: Any, source: EventSource, envelope: Envelope
) -> HttpResponse:
    batch = native.parse_track(payload, envelope, max_events=settings.CDP_MAX_BATCH_EVENTS)
    if not batch.events:
        status = 413 if batch.only_too_large else 400
        first = batch.rejected[0]
        error = DomainError(
            f"No valid event in the request: {first['field'] or 'event'} {first['error']}",
            field=first["field"],
            code="payload_too_large" if status == 413 else "no_valid_event",
            status_code=status,
        )
        body = error.as_dict()
        body["rejected"] = batch.rejected
        body["warnings"] = [w.as_dict() for w in batch.warnings]
        return json_response(body, status=status)
    check_rate(source, len(batch.events))
    result = services.events_ingest(source=source, batch=batch)
    return json_response(result.as_dict())
