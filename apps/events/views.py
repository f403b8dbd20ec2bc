"""Tracking endpoints: native /api/track, the Segment HTTP API (/v1/...) with RudderStack's
beacon batch and source configuration, Tracardi /track."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from apps.events import selectors, services
from apps.events.tracking import (
    authenticate,
    check_origin,
    check_rate,
    json_response,
    preflight,
    tracking_endpoint,
    with_cors,
    write_key_from_headers,
)
from apps.events.wire import native, rudderstack, segmentio, tracardi
from apps.events.wire.base import Envelope
from apps.sources.models import EventSource
from cdp.errors import DomainError, error_response


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


# --- Segment HTTP tracking API ------------------------------------------------------------------


def segmentio_error(error: DomainError, **extra: Any) -> HttpResponse:
    """Errors as Segment's SDKs parse them (code, message), plus our own error object."""
    body = {
        "success": False,
        "code": error.code,
        "message": error.message,
        **error.as_dict(),
        **extra,
    }
    response = json_response(body, status=error.status_code)
    for name, value in error.headers.items():
        response[name] = value
    return response


def _segmentio_view(call: str | None, *, write_key_param: str | None = None) -> Any:
    def handler(
        request: HttpRequest, payload: Any, source: EventSource, envelope: Envelope
    ) -> HttpResponse:
        batch = segmentio.parse(payload, envelope, call=call)
        if not batch.events:
            first = batch.rejected[0]
            error = DomainError(
                f"No valid message: {first['field'] or 'message'} {first['error']}",
                field=first["field"],
                code="payload_too_large" if batch.only_too_large else "no_valid_event",
                status_code=413 if batch.only_too_large else 400,
            )
            return segmentio_error(
                error,
                rejected=batch.rejected,
                warnings=[w.as_dict() for w in batch.warnings],
            )
        check_rate(source, len(batch.events))
        result = services.events_ingest(source=source, batch=batch)
        return json_response({"success": True, **result.as_dict()})

    handler.__name__ = f"segmentio_{call or 'batch'}"
    # Segment's limits: 32 KB for a single call, 500 KB for a batch (32 KB per message).
    limit = segmentio.MAX_BATCH_BYTES if call is None else segmentio.MAX_MESSAGE_BYTES
    return tracking_endpoint(
        handler,
        max_request_bytes=limit,
        render_error=segmentio_error,
        write_key_param=write_key_param,
    )


segmentio_track = _segmentio_view("track")
segmentio_identify = _segmentio_view("identify")
segmentio_page = _segmentio_view("page")
segmentio_screen = _segmentio_view("screen")
segmentio_group = _segmentio_view("group")
segmentio_alias = _segmentio_view("alias")
segmentio_batch = _segmentio_view(None)
# RudderStack's analytics-js with useBeacon: text/plain batches, the key in the query string.
rudderstack_beacon_batch = _segmentio_view(None, write_key_param="writeKey")


@csrf_exempt
def rudderstack_source_config(request: HttpRequest) -> HttpResponse:
    """GET /sourceConfig/ as RudderStack's control plane answers it (Basic auth with the write
    key), so that analytics-js v3 starts with configUrl pointed here. 401 for a missing, unknown
    or disabled key: the SDK then stops without retrying."""
    if request.method == "OPTIONS":
        return preflight(request, methods="GET, HEAD, OPTIONS")
    try:
        if request.method not in ("GET", "HEAD"):
            raise DomainError("Use GET", code="method_not_allowed", status_code=405)
        source = authenticate(write_key_from_headers(request))
        check_origin(request, source)
        response = json_response(rudderstack.source_config(source))
    except DomainError as exc:
        response = error_response(exc)
        if exc.status_code == 405:
            response["Allow"] = "GET, HEAD, OPTIONS"
    return with_cors(request, response)


# --- Tracardi-style /track ----------------------------------------------------------------------


@tracking_endpoint(source_from_body=tracardi.source_from_body)
def tracardi_track(
    request: HttpRequest, payload: Any, source: EventSource, envelope: Envelope
) -> HttpResponse:
    # The source id in the body is the key, even when a write-key header came along too.
    if tracardi.source_id(payload) != str(source.pk):
        raise DomainError(
            "source.id is not the source of the write key sent",
            field="source.id",
            code="unauthorized",
            status_code=401,
        )
    parsed = tracardi.parse(
        payload,
        envelope,
        max_events=settings.CDP_MAX_BATCH_EVENTS,
        person_of_session=lambda key: selectors.session_person(source_id=source.pk, key=key),
    )
    batch = parsed.batch
    body: dict[str, Any] = {
        "profile": {"id": parsed.profile_id},
        "session": {"id": parsed.session_id},
        "events": [],
        "errors": batch.rejected,
        "warnings": [w.as_dict() for w in batch.warnings],
    }
    if not batch.events:
        first = batch.rejected[0]
        status = 413 if batch.only_too_large else 400
        error = DomainError(
            f"No valid event: {first['field'] or 'event'} {first['error']}",
            field=first["field"],
            code="payload_too_large" if status == 413 else "no_valid_event",
            status_code=status,
        )
        return json_response({**error.as_dict(), **body}, status=status)
    check_rate(source, len(batch.events))
    result = services.events_ingest(source=source, batch=batch)
    body["events"] = [e.message_id for e in batch.events]
    body["accepted"], body["duplicates"] = result.accepted, result.duplicates
    return json_response(body)
