"""The webhook bridge: POST /api/bridges/webhook/<source id> takes any JSON (a third party's
webhook) and turns it into events by the source's mapping. Answers, limits and dedupe are
those of /api/track; with a secret set, the body must carry a valid HMAC-SHA256 signature."""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from apps.events import body
from apps.events.bridges.ingest import NoValidEvent, bridge_ingest
from apps.events.tracking import envelope_for, json_response
from apps.sources import selectors as source_selectors
from apps.sources.bridges import WEBHOOK, signature_header
from apps.sources.models import EventSource
from cdp.errors import DomainError, error_response

logger = logging.getLogger(__name__)


def webhook_source(source_id: uuid.UUID) -> EventSource:
    source = source_selectors.source_get_for_id_cached(str(source_id))
    if source is None or source.bridge != WEBHOOK.key:
        raise DomainError(
            "No webhook bridge here: set the source's bridge to Webhook in the admin",
            code="not_found",
            status_code=404,
        )
    if not source.enabled:
        raise DomainError(
            f"The source {source.name!r} is disabled: enable it in the admin",
            code="source_disabled",
            status_code=401,
        )
    return source


def signature_verify(source: EventSource, request: HttpRequest, raw: bytes) -> None:
    """With a secret set, the header must hold HMAC-SHA256(secret, body) in hex."""
    if not source.bridge_secret:
        return
    header, prefix = signature_header(source.bridge_config)
    sent = request.headers.get(header, "").strip()
    if not sent:
        raise DomainError(
            f"No signature: send HMAC-SHA256 of the body in the {header} header",
            field=header,
            code="invalid_signature",
            status_code=401,
        )
    if prefix and sent.startswith(prefix):
        sent = sent[len(prefix) :]
    expected = hmac.new(source.bridge_secret.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(sent.lower().encode(), expected.encode()):
        raise DomainError(
            f"The {header} signature does not match the body: check the secret",
            field=header,
            code="invalid_signature",
            status_code=401,
        )


@csrf_exempt
def webhook(request: HttpRequest, source_id: uuid.UUID) -> HttpResponse:
    if request.method != "POST":
        response = error_response(
            DomainError("Use POST", code="method_not_allowed", status_code=405)
        )
        response["Allow"] = "POST"
        return response
    received_at = timezone.now()
    try:
        source = webhook_source(source_id)
        raw = body.read_body(request, max_bytes=settings.CDP_MAX_REQUEST_BYTES)
        signature_verify(source, request, raw)
        document = body.parse_json(raw)
        envelope = envelope_for(request, source, received_at)
        result = bridge_ingest(source=source, document=document, envelope=envelope)
        return json_response(result.as_dict())
    except NoValidEvent as exc:
        return json_response(exc.body, status=exc.status_code)
    except DomainError as exc:
        return error_response(exc)
    except DatabaseError as exc:
        if not isinstance(exc, OperationalError | InterfaceError):
            logger.exception("Unexpected database error on a webhook bridge request")
        return error_response(
            DomainError(
                "Storage is unavailable; nothing was stored: retry later",
                code="storage_unavailable",
                status_code=503,
                headers={"Retry-After": "5"},
            )
        )
