"""One error contract: services raise DomainError, every API renders {"error": {...}}."""

from __future__ import annotations

from typing import Any

import orjson
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class DomainError(Exception):
    """A failure a client can act on: it carries the HTTP status, a code and the field at fault."""

    status_code = 400
    code = "invalid"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers or {}
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


def error_response(error: DomainError) -> HttpResponse:
    """Render a DomainError for plain Django views (the tracking endpoints)."""
    response = HttpResponse(
        orjson.dumps(error.as_dict()), status=error.status_code, content_type="application/json"
    )
    for name, value in error.headers.items():
        response[name] = value
    return response


def _first_field_error(detail: Any, prefix: str = "") -> tuple[str | None, str]:
    if isinstance(detail, dict):
        for key, value in detail.items():
            field = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                field = prefix or None  # type: ignore[assignment]
            return (
                _first_field_error(value, field or "")
                if isinstance(value, dict | list)
                else (
                    field,
                    str(value),
                )
            )
    if isinstance(detail, list) and detail:
        return _first_field_error(detail[0], prefix)
    return (prefix or None, str(detail))


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: the same {"error": {code, message, field}} shape everywhere."""
    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.status_code, headers=exc.headers)
    # As DRF's handler does, so that the code below sees DRF exceptions with their codes.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_field_error(exc.detail)
        code = "invalid"
    else:
        field = None
        detail = getattr(exc, "detail", str(exc))
        message = str(detail)
        code = str(getattr(detail, "code", None) or getattr(exc, "default_code", "error"))
    response.data = {"error": {"code": code, "message": message, "field": field}}
    if isinstance(exc, exceptions.ValidationError):
        response.data["error"]["details"] = exc.detail
        response.status_code = status.HTTP_400_BAD_REQUEST
    return response
