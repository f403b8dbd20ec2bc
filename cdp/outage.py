"""When the database is unavailable: answer 503 with Retry-After at once, everywhere.

A request that needs PostgreSQL while it is down (or while every pooled connection is busy past
DATABASE_POOL_TIMEOUT) gets a 503 with Retry-After (JSON for the API and tracking endpoints, a
small HTML page for the pages) instead of a 500, so SDKs, scripts and browsers retry. The
connect and pool timeouts (cdp/settings.py) keep the wait short.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import orjson
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.views import defaults

logger = logging.getLogger(__name__)

try:  # the pool's timeout, when psycopg's pool is installed (PostgreSQL)
    from psycopg_pool import PoolTimeout
except ImportError:  # pragma: no cover - SQLite-only installs
    PoolTimeout = OperationalError  # type: ignore[assignment,misc]

UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
)

# Paths whose clients read JSON: the management API, its schema and every tracking endpoint.
_JSON_PREFIXES = ("/api/", "/v1/", "/track", "/readyz")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Temporarily unavailable</title></head>
<body><h1>Temporarily unavailable</h1>
<p>The database cannot be reached right now. Nothing was changed: try again in a few
seconds.</p></body></html>
"""


def is_unavailable(exc: BaseException | None) -> bool:
    return isinstance(exc, UNAVAILABLE_ERRORS)


def unavailable_response(request: HttpRequest) -> HttpResponse:
    retry_after = str(settings.CDP_RETRY_AFTER_SECONDS)
    if request.path.startswith(_JSON_PREFIXES) or "json" in request.META.get("HTTP_ACCEPT", ""):
        body = {
            "error": {
                "code": "storage_unavailable",
                "message": "The database is unavailable; nothing was stored: retry later",
                "field": None,
            }
        }
        response = HttpResponse(orjson.dumps(body), status=503, content_type="application/json")
    else:
        response = HttpResponse(_PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = retry_after
    return response


class DatabaseUnavailableMiddleware:
    """Turn a view's database-unavailable error into a 503 with Retry-After."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_unavailable(exception):
            return None
        logger.warning("Database unavailable on %s %s: %s", request.method, request.path, exception)
        return unavailable_response(request)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: an error raised outside a view (a middleware loading the session) that is
    the database being unavailable is a 503 too; anything else is Django's usual 500."""
    if is_unavailable(sys.exc_info()[1]):
        return unavailable_response(request)
    return defaults.server_error(request)
