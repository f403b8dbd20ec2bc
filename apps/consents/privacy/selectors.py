"""Reads on privacy requests."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from apps.consents.models import PrivacyExport, PrivacyRequest, PrivacyRequestKind
from cdp.errors import DomainError


def privacy_request_list() -> QuerySet[PrivacyRequest]:
    return PrivacyRequest.objects.select_related("requested_by").order_by("-created_at")


def privacy_request_get(request_id: Any) -> PrivacyRequest:
    try:
        pk = uuid.UUID(str(request_id))
    except ValueError:
        pk = None
    found = privacy_request_list().filter(pk=pk).first() if pk else None
    if found is None:
        raise DomainError("No such privacy request", code="not_found", status_code=404)
    return found


def privacy_export_info(request: PrivacyRequest) -> dict[str, Any] | None:
    """Size, checksum and expiry of a request's archive, without loading it."""
    if request.kind != PrivacyRequestKind.EXPORT:
        return None
    found = (
        PrivacyExport.objects.filter(request=request).values("size", "sha256", "expires_at").first()
    )
    return dict(found) if found is not None else None


def privacy_export_content(request: PrivacyRequest) -> bytes:
    content = (
        PrivacyExport.objects.filter(request=request).values_list("content", flat=True).first()
    )
    if content is None:
        raise DomainError(
            "This request has no archive: it is not an export, not done yet, or expired "
            "(make a new export request)",
            code="no_export",
            status_code=404,
        )
    return bytes(content)
