"""The tracking fast path (cdp/fastpath.py): tracking endpoints skip the browser middleware
but keep what every response of the project has, and nothing else changes path."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import get_resolver

from apps.events.models import Event
from apps.sources.models import EventSource
from cdp.fastpath import TRACKING_URLCONF, TrackingFastPathMiddleware
from tests.clients import TrackingClient
from tests.events.track_helpers import event, ok

pytestmark = pytest.mark.django_db


def test_every_tracking_endpoint_is_served_by_the_fast_path_and_nothing_else_is() -> None:
    fast = {p.name for p in get_resolver(TRACKING_URLCONF).url_patterns}
    assert {"track", "segmentio-batch", "identify", "people", "consent"} <= fast
    assert not fast & {"healthz", "readyz", "login", "schema"}
    middleware = TrackingFastPathMiddleware(lambda request: HttpResponse("full stack"))
    factory = RequestFactory()
    for path in ("/healthz", "/api/v1/events/", "/admin/", "/", "/api/trackx"):
        assert middleware(factory.get(path)).content == b"full stack", path


def test_tracking_answers_keep_the_security_headers(source: EventSource) -> None:
    response = TrackingClient(Client(), source.write_key).post(event(message_id="m1"))
    ok(response)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in response  # no session, no CSRF cookie: a machine's request


def test_a_host_that_is_not_allowed_is_refused_on_tracking_endpoints_too(
    source: EventSource, settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["cdp.example.com"]
    client = TrackingClient(Client(HTTP_HOST="attacker.example"), source.write_key)
    assert client.post(event(message_id="m1")).status_code == 400
    assert not Event.objects.exists()
    allowed = TrackingClient(Client(HTTP_HOST="cdp.example.com"), source.write_key)
    ok(allowed.post(event(message_id="m2")))


def test_an_error_raised_past_the_view_answers_like_everywhere_else(
    source: EventSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project's handler500 answers what a tracking view did not: a database that is down
    is a 503 with Retry-After (SDKs retry), a bug a 500, never a crashed worker."""

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    # Raised where the tracking decorator does not catch it (answering CORS).
    monkeypatch.setattr("apps.events.tracking.with_cors", down)
    client = TrackingClient(Client(raise_request_exception=False), source.write_key)
    response = client.post(event(message_id="m1"))
    assert response.status_code == 503
    assert response["Retry-After"]
    monkeypatch.undo()

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("apps.events.tracking.envelope_for", bug)
    assert client.post(event(message_id="m2")).status_code == 500
    assert not Event.objects.filter(message_id="m2").exists()


def test_pages_and_the_api_still_go_through_the_whole_stack(client: Client) -> None:
    login = client.get("/login/")
    assert login.status_code == 200
    assert login["X-Frame-Options"] == "DENY"  # clickjacking middleware
    assert "csrftoken" in login.cookies  # CSRF middleware
    assert client.get("/api/v1/events/").status_code in (401, 403)  # authentication
