"""CORS: the management API answers browsers only on the origins an operator listed
(CDP_API_CORS_ORIGINS), never reflecting an arbitrary origin; tracking endpoints accept any
origin without credentials."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.clients import TrackingClient
from tests.events.track_helpers import EVENT

ADMIN_UI = "https://admin.example.com"
EVIL = "https://evil.example.net"


def _preflight(client: Client, path: str, origin: str) -> Any:
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/profiles/", "/api/schema/"])
def test_no_cors_headers_on_the_api_by_default(admin_client: Client, path: str) -> None:
    for response in (
        admin_client.get(path, HTTP_ORIGIN=EVIL),
        _preflight(admin_client, path, EVIL),
    ):
        assert not response.has_header("Access-Control-Allow-Origin")
        assert not response.has_header("Access-Control-Allow-Credentials")


@pytest.mark.django_db
def test_a_listed_origin_is_allowed_and_others_are_not(settings: Any, admin_client: Client) -> None:
    settings.CORS_ALLOWED_ORIGINS = [ADMIN_UI]
    allowed = admin_client.get("/api/v1/events", HTTP_ORIGIN=ADMIN_UI)
    assert allowed.status_code == 200
    assert allowed["Access-Control-Allow-Origin"] == ADMIN_UI
    assert not allowed.has_header("Access-Control-Allow-Credentials")
    preflight = _preflight(admin_client, "/api/v1/events", ADMIN_UI)
    assert preflight.status_code == 200
    assert "authorization" in preflight["Access-Control-Allow-Headers"]

    refused = admin_client.get("/api/v1/events", HTTP_ORIGIN=EVIL)
    assert not refused.has_header("Access-Control-Allow-Origin")
    assert not refused.has_header("Access-Control-Allow-Credentials")


@pytest.mark.django_db
def test_credentials_only_when_the_operator_asks_and_only_for_listed_origins(
    settings: Any, admin_client: Client
) -> None:
    settings.CORS_ALLOWED_ORIGINS = [ADMIN_UI]
    settings.CORS_ALLOW_CREDENTIALS = True
    allowed = admin_client.get("/api/v1/events", HTTP_ORIGIN=ADMIN_UI)
    assert allowed["Access-Control-Allow-Credentials"] == "true"
    refused = admin_client.get("/api/v1/events", HTTP_ORIGIN=EVIL)
    assert not refused.has_header("Access-Control-Allow-Origin")
    assert not refused.has_header("Access-Control-Allow-Credentials")


def test_tracking_allows_any_origin_without_credentials(tracker: TrackingClient) -> None:
    posted = tracker.post(EVENT, HTTP_ORIGIN=EVIL)
    assert posted.status_code == 200
    assert posted["Access-Control-Allow-Origin"] == EVIL
    assert not posted.has_header("Access-Control-Allow-Credentials")
    preflight = tracker.client.options(
        "/api/track", HTTP_ORIGIN=EVIL, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert preflight["Access-Control-Allow-Origin"] == EVIL
    assert not preflight.has_header("Access-Control-Allow-Credentials")
