"""What every inbound bridge does with a received document: map it, then ingest it through the
same parsing, limits, gates and dedupe as POST /api/track."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.events import services
from apps.events.bridges.mapping import apply_mapping
from apps.events.services import IngestResult
from apps.events.tracking import check_rate
from apps.events.wire import native
from apps.events.wire.base import Envelope
from apps.sources.models import EventSource
from cdp.errors import DomainError


class NoValidEvent(DomainError):
    """The document made no event that could be stored: the body /api/track would answer."""

    body: dict[str, Any]


def _with_message_ids(payload: Any, default_message_id: str) -> Any:
    """Events without a message id get one derived from where they came from, so a document
    delivered twice (a stream entry read again after a crash) is stored once."""
    if isinstance(payload, dict) and isinstance(payload.get("batch"), list):
        for index, event in enumerate(payload["batch"]):
            if isinstance(event, dict) and not event.get("message_id"):
                event["message_id"] = f"{default_message_id}:{index}"
    elif isinstance(payload, dict) and not payload.get("message_id"):
        payload["message_id"] = default_message_id
    return payload


def bridge_ingest(
    *,
    source: EventSource,
    document: Any,
    envelope: Envelope,
    default_message_id: str | None = None,
) -> IngestResult:
    """Map the document to native events and ingest them; committed when this returns.
    Raises DomainError (NoValidEvent, rate limited) when nothing can be stored."""
    payload = apply_mapping(source.bridge_config or {}, document)
    if default_message_id:
        payload = _with_message_ids(payload, default_message_id)
    batch = native.parse_track(payload, envelope, max_events=settings.CDP_MAX_BATCH_EVENTS)
    if not batch.events:
        first = batch.rejected[0]
        too_large = batch.only_too_large
        error = NoValidEvent(
            f"No valid event in the document: {first['field'] or 'event'} {first['error']}",
            field=first["field"],
            code="payload_too_large" if too_large else "no_valid_event",
            status_code=413 if too_large else 400,
        )
        error.body = {
            **error.as_dict(),
            "rejected": batch.rejected,
            "warnings": [w.as_dict() for w in batch.warnings],
        }
        raise error
    check_rate(source, len(batch.events))
    return services.events_ingest(source=source, batch=batch)
