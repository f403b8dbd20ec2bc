"""What every tracking endpoint shares: the write key, CORS, limits, the client's IP."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

import orjson
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from apps.events import body
from apps.events.ratelimit import rate_limit_allows
from apps.events.wire.base import Envelope
from apps.sources import selectors as source_selectors
from apps.sources.models import EventSource
from cdp.errors import DomainError, error_response

logger = logging.getLogger(__name__)

CORS_ALLOW_HEADERS = "Content-Type, Content-Encoding, Authorization, X-Write-Key"
# What a preflight may ask for: header names (RFC 9110 tokens), a bounded number of them.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
MAX_REQUESTED_HEADERS = 32


def write_key_from_headers(request: HttpRequest) -> str:
    key = request.META.get("HTTP_X_WRITE_KEY", "").strip()
    if key:
        return key
    auth = request.META.get("HTTP_AUTHORIZATION", "")
    if auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
        except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8
            raise DomainError(
                "The Authorization header is not valid Basic credentials",
                code="unauthorized",
                status_code=401,
            ) from None
        return decoded.split(":", 1)[0].strip()
    return ""


def write_key_from_body(payload: Any) -> str:
    if isinstance(payload, dict):
        key = payload.get("writeKey", payload.get("write_key"))
        if isinstance(key, str):
            return key.strip()
    return ""


def authenticate(write_key: str) -> EventSource:
    if not write_key:
        raise DomainError(
            "No write key: send it as the Basic-auth username, an X-Write-Key header or "
            "writeKey in the body",
            code="unauthorized",
            status_code=401,
        )
    # No stored key is longer than 64 characters or holds NUL, control characters or lone
    # surrogates (which the database driver would refuse with an error, not a miss).
    usable = len(write_key) <= 64 and write_key.isprintable()
    source = source_selectors.source_get_for_write_key(write_key) if usable else None
    if source is None:
        raise DomainError("Unknown write key", code="unauthorized", status_code=401)
    if not source.enabled:
        raise DomainError(
            f"The source {source.name!r} is disabled: enable it in the admin",
            code="source_disabled",
            status_code=401,
        )
    return source


def client_ip(request: HttpRequest) -> str:
    proxies = settings.CDP_TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [p for p in forwarded if p]
        if len(forwarded) >= proxies:
            return forwarded[-proxies][:64]
    return request.META.get("REMOTE_ADDR", "")[:64]


def envelope_for(request: HttpRequest, source: EventSource, received_at: datetime) -> Envelope:
    return Envelope(
        source_id=str(source.pk),
        received_at=received_at,
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:1000],
        gpc=request.META.get("HTTP_SEC_GPC", "").strip() == "1",
        max_event_bytes=settings.CDP_MAX_EVENT_BYTES,
        max_future=timedelta(seconds=settings.CDP_MAX_FUTURE_SECONDS),
    )


def check_origin(request: HttpRequest, source: EventSource) -> None:
    origin = request.META.get("HTTP_ORIGIN")
    if origin and not source.origin_allowed(origin):
        raise DomainError(
            f"Origin {origin} is not allowed for this source: add it to the source's allowed "
            "origins in the admin",
            code="origin_not_allowed",
            status_code=403,
        )


def check_rate(source: EventSource, n_events: int) -> None:
    if not rate_limit_allows(source, n_events):
        raise DomainError(
            f"Source over its rate limit of {source.rate_limit_per_second} events per second: "
            "retry after a second",
            code="rate_limited",
            status_code=429,
            headers={"Retry-After": "1"},
        )


def json_response(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(data), status=status, content_type="application/json")


def with_cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    # Any origin may send events (a source's allowed origins are checked on the request), but
    # never with credentials: no cookie of ours is needed or accepted here.
    origin = request.META.get("HTTP_ORIGIN")
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
    return response


def allowed_request_headers(request: HttpRequest) -> str:
    """Our own headers, plus those the preflight asks for. Trackers add their own (RudderStack's
    AnonymousId and SentAt, Tracardi's x-timestamp...), and the tracking endpoints authenticate
    by write key, never by cookie or session, so no header a page adds can act for a user."""
    names = CORS_ALLOW_HEADERS.split(", ")
    known = {name.lower() for name in names}
    asked = request.META.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "")
    for name in (part.strip() for part in asked.split(",")[:MAX_REQUESTED_HEADERS]):
        if _HEADER_NAME.match(name) and name.lower() not in known:
            known.add(name.lower())
            names.append(name.lower())
    return ", ".join(names)


def preflight(request: HttpRequest, methods: str = "POST, OPTIONS") -> HttpResponse:
    # A preflight carries no credentials, so the source isn't known yet: allow the methods and
    # headers here, and check the origin against the source's list on the real request.
    response = HttpResponse(status=204)
    with_cors(request, response)
    response["Access-Control-Allow-Methods"] = methods
    response["Access-Control-Allow-Headers"] = allowed_request_headers(request)
    response["Access-Control-Max-Age"] = "86400"
    response["Vary"] = "Origin, Access-Control-Request-Headers"
    return response


TrackingHandler = Callable[[HttpRequest, Any, EventSource, Envelope], HttpResponse]
ErrorRenderer = Callable[[DomainError], HttpResponse]
BodyAuthenticator = Callable[[Any], EventSource]


def source_from_write_key(payload: Any) -> EventSource:
    """The source of a body that carries its write key as writeKey (when no header did)."""
    return authenticate(write_key_from_body(payload))


def tracking_endpoint(
    handler: TrackingHandler | None = None,
    *,
    max_request_bytes: int | None = None,
    render_error: ErrorRenderer = error_response,
    source_from_body: BodyAuthenticator = source_from_write_key,
    write_key_param: str | None = None,
) -> Any:
    """Wrap a wire format's handler with what all tracking endpoints do the same way: CORS,
    body limits and decoding, authentication, origin check, and the error contract (bad input
    is a 4xx with the reason; storage down is a 503; never a 500). Wire formats that differ
    (size limits, error shape, a source id instead of a write key, a key in the query string
    as sendBeacon sends it) say so in the arguments."""

    def decorate(handler: TrackingHandler) -> Callable[[HttpRequest], HttpResponse]:
        @csrf_exempt
        @wraps(handler)
        def view(request: HttpRequest) -> HttpResponse:
            if request.method == "OPTIONS":
                return preflight(request)
            if request.method != "POST":
                response = render_error(
                    DomainError("Use POST", code="method_not_allowed", status_code=405)
                )
                response["Allow"] = "POST, OPTIONS"
                return with_cors(request, response)
            received_at = timezone.now()
            limit = max_request_bytes or settings.CDP_MAX_REQUEST_BYTES
            try:
                header_key = write_key_from_headers(request)
                if not header_key and write_key_param:
                    header_key = request.GET.get(write_key_param, "").strip()
                    if not header_key:
                        raise DomainError(
                            f"No write key: send it as ?{write_key_param}=...",
                            code="unauthorized",
                            status_code=401,
                        )
                source = authenticate(header_key) if header_key else None
                payload = body.parse_json(body.read_body(request, max_bytes=limit))
                if source is None:
                    source = source_from_body(payload)
                check_origin(request, source)
                envelope = envelope_for(request, source, received_at)
                response = handler(request, payload, source, envelope)
            except DomainError as exc:
                response = render_error(exc)
            except DatabaseError as exc:
                if not isinstance(exc, OperationalError | InterfaceError):
                    logger.exception("Unexpected database error on a tracking request")
                response = render_error(
                    DomainError(
                        "Storage is unavailable; nothing was stored: retry later",
                        code="storage_unavailable",
                        status_code=503,
                        headers={"Retry-After": "5"},
                    )
                )
            return with_cors(request, response)

        return view

    return decorate(handler) if handler is not None else decorate
