"""POST /api/track from browsers: CORS preflights, and the source's allowed origins."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.events.models import Event
from apps.sources import services as source_services
from tests.clients import TrackingClient
from tests.events.track_helpers import EVENT, error, ok, stored_names

SHOP = "https://shop.example.com"


@pytest.fixture
def shop_tracker(db: None) -> TrackingClient:
    shop = source_services.source_create(
        name="Shop", allowed_origins=[SHOP, "https://m.example.com/"]
    )
    return TrackingClient(Client(), shop.write_key)


def preflight(client: Client, origin: str, headers: str = "content-type, x-write-key") -> object:
    return client.options(
        "/api/track",
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=headers,
    )


def test_preflight_is_204_with_the_origin_methods_and_headers(shop_tracker):
    response = preflight(shop_tracker.client, SHOP)

    assert response.status_code == 204
    assert response.content == b""
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert "POST" in response["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "x-write-key", "content-type", "content-encoding"} <= allowed
    assert int(response["Access-Control-Max-Age"]) > 0
    assert "Origin" in response["Vary"]
    assert not Event.objects.exists()


def test_preflight_needs_no_write_key(db):
    response = preflight(Client(), "https://anywhere.example.org", "authorization")

    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "https://anywhere.example.org"


def test_post_from_an_allowed_origin_is_200_with_cors_headers(shop_tracker):
    response = shop_tracker.post(EVENT, HTTP_ORIGIN=SHOP)

    ok(response)
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert "Origin" in response["Vary"]
    assert stored_names() == ["signed_up"]


def test_allowed_origins_ignore_a_trailing_slash(shop_tracker):
    ok(shop_tracker.post(EVENT, HTTP_ORIGIN="https://m.example.com"))

    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.org",
        "http://shop.example.com",  # another scheme is another origin
        "https://shop.example.com.evil.test",
        "https://shop.example.com:8443",
        "null",  # sandboxed iframes, file:// pages
    ],
)
def test_post_from_an_origin_not_allowed_is_403_and_stores_nothing(shop_tracker, origin):
    response = shop_tracker.post({"batch": [EVENT, EVENT]}, HTTP_ORIGIN=origin)

    err = error(response, 403, "origin_not_allowed")
    assert origin in err["message"]
    assert not Event.objects.exists()


def test_origin_is_checked_when_the_key_is_in_a_beacon_body(shop_tracker):
    payload = {**EVENT, "writeKey": shop_tracker.write_key}

    denied = shop_tracker.post(
        payload, auth="none", content_type="text/plain", HTTP_ORIGIN="https://evil.example.org"
    )
    allowed = shop_tracker.post(payload, auth="none", content_type="text/plain", HTTP_ORIGIN=SHOP)

    error(denied, 403, "origin_not_allowed")
    ok(allowed)
    assert Event.objects.count() == 1


def test_requests_without_an_origin_are_servers_and_not_checked(shop_tracker):
    response = shop_tracker.post(EVENT)

    ok(response)
    assert not response.has_header("Access-Control-Allow-Origin")
    assert Event.objects.count() == 1


@pytest.mark.parametrize("origins", [[], ["*"]])
def test_empty_or_wildcard_allowed_origins_mean_any_origin(db, origins):
    source = source_services.source_create(name="Open", allowed_origins=origins)
    tracker = TrackingClient(Client(), source.write_key)

    response = tracker.post(EVENT, HTTP_ORIGIN="https://whoever.example.net")

    ok(response)
    assert response["Access-Control-Allow-Origin"] == "https://whoever.example.net"
    assert Event.objects.count() == 1


def test_errors_carry_cors_headers_so_the_browser_can_read_them(shop_tracker):
    response = shop_tracker.post(EVENT, auth="none", HTTP_ORIGIN=SHOP)

    error(response, 401, "unauthorized")
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert not Event.objects.exists()
