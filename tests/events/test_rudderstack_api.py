"""RudderStack's wire (the Segment format with its own habits): identify traits in
context.traits, originalTimestamp, channel and _metadata; the beacon batch endpoint; the source
configuration that analytics-js loads; CORS for the headers its SDKs add."""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from django.test import Client, TestCase
from django.utils import timezone

from apps.events.models import Event
from apps.profiles import selectors as profile_selectors
from apps.sources import services as source_services

SHOP = "https://shop.example.com"


def send(tracker: Any, call: str, payload: Any, **kwargs: Any) -> Any:
    return tracker.post(payload, path=f"/v1/{call}", **kwargs)


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    return body


def failed(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def beacon(client: Client, query: str, body: bytes, **headers: str) -> Any:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.generic(
            "POST", f"/beacon/v1/batch{query}", body, content_type="text/plain", **headers
        )


def message(kind: str = "track", **fields: Any) -> dict[str, Any]:
    base = {"type": kind, "anonymousId": "anon-r", "messageId": f"m-{kind}", "channel": "web"}
    if kind == "track":
        base["event"] = "Clicked"
    return {**base, **fields}


# --- identify traits, timestamps, channel and _metadata -----------------------------------------


def test_identify_takes_traits_from_context_traits_as_rudderstack_sends_them(tracker):
    ok(
        send(
            tracker,
            "identify",
            {
                "userId": "user-r",
                "anonymousId": "anon-r",
                "context": {"traits": {"plan": "pro", "seats": 3}},
            },
        )
    )

    profile = profile_selectors.profile_get_for_distinct_id("user-r")
    assert profile is not None
    assert profile.traits["plan"] == "pro"
    assert profile.traits["seats"] == 3
    assert profile_selectors.profile_get_for_distinct_id("anon-r") == profile


def test_top_level_traits_win_over_context_traits(tracker):
    ok(
        send(
            tracker,
            "identify",
            {
                "userId": "user-r",
                "traits": {"plan": "team"},
                "context": {"traits": {"plan": "pro"}},
            },
        )
    )

    assert profile_selectors.profile_get_for_distinct_id("user-r").traits["plan"] == "team"


def test_context_traits_on_other_calls_stay_in_the_context_and_set_nothing(tracker):
    ok(send(tracker, "identify", {"userId": "user-r", "traits": {"plan": "pro"}}))
    ok(
        send(
            tracker,
            "track",
            {"userId": "user-r", "event": "Clicked", "context": {"traits": {"plan": "free"}}},
        )
    )

    stored = Event.objects.get(event_name="Clicked")
    assert stored.context["traits"] == {"plan": "free"}
    assert profile_selectors.profile_get_for_distinct_id("user-r").traits["plan"] == "pro"


def test_original_timestamp_is_the_event_time_corrected_by_sent_at(tracker):
    now = timezone.now()
    happened = now - timedelta(minutes=10)
    # The client's clock runs 1 hour fast: both of its times are shifted alike.
    skew = timedelta(hours=1)

    ok(
        send(
            tracker,
            "track",
            message(originalTimestamp=iso(happened + skew), sentAt=iso(now + skew)),
        )
    )

    stored = Event.objects.get()
    assert abs(stored.timestamp - happened) < timedelta(seconds=5)


def test_original_timestamp_in_the_future_gives_the_time_received(tracker):
    far = datetime(2100, 1, 1, tzinfo=UTC)

    body = ok(send(tracker, "track", message(originalTimestamp=iso(far))))

    stored = Event.objects.get()
    assert abs(stored.timestamp - timezone.now()) < timedelta(minutes=1)
    assert any("future" in w["warning"] for w in body["warnings"]), body


def test_channel_and_metadata_are_kept_in_the_context(tracker):
    ok(send(tracker, "track", message(channel="server", _metadata={"nodeVersion": "20.1.0"})))

    stored = Event.objects.get()
    assert stored.context["channel"] == "server"
    assert stored.context["_metadata"] == {"nodeVersion": "20.1.0"}


# --- the beacon batch ---------------------------------------------------------------------------


def test_beacon_batch_stores_text_plain_batches_once(tracker):
    payload = {
        "batch": [message("page", name="Home"), message("track")],
        "sentAt": iso(timezone.now()),
    }
    raw = orjson.dumps(payload)

    body = ok(beacon(tracker.client, f"?writeKey={tracker.write_key}", raw, HTTP_ORIGIN=SHOP))
    again = ok(beacon(tracker.client, f"?writeKey={tracker.write_key}", raw))

    assert body["accepted"] == 2
    assert again["accepted"] == 0
    assert again["duplicates"] == 2
    assert sorted(Event.objects.values_list("event_name", flat=True)) == ["Clicked", "page_view"]


def test_beacon_batch_has_the_batch_limits(tracker):
    many = {"batch": [message("track", messageId=f"m-{i}") for i in range(2501)]}

    response = beacon(tracker.client, f"?writeKey={tracker.write_key}", orjson.dumps(many))

    failed(response, 413, "batch_too_large")
    assert not Event.objects.exists()


def test_beacon_batch_is_rate_limited_like_v1_batch(db):
    source = source_services.source_create(name="Slow", rate_limit_per_second=1)
    raw = orjson.dumps({"batch": [message("track", messageId="a"), message("page")]})

    response = beacon(Client(), f"?writeKey={source.write_key}", raw)

    failed(response, 429, "rate_limited")
    assert response["Retry-After"]
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("query", "code"),
    [("?writeKey=wrong", "unauthorized"), ("", "unauthorized"), ("?writeKey=", "unauthorized")],
)
def test_beacon_batch_with_a_bad_write_key_is_401_and_stores_nothing(tracker, query, code):
    raw = orjson.dumps({"batch": [message("track")]})

    body = failed(beacon(tracker.client, query, raw), 401, code)

    assert "write key" in body["error"]["message"].lower()
    assert not Event.objects.exists()


def test_beacon_batch_of_a_disabled_source_is_401(db):
    source = source_services.source_set_enabled(
        source=source_services.source_create(name="Off"), enabled=False
    )
    raw = orjson.dumps({"batch": [message("track")]})

    failed(beacon(Client(), f"?writeKey={source.write_key}", raw), 401, "source_disabled")
    assert not Event.objects.exists()


@pytest.mark.parametrize("raw", [b"not json", b"batch=1", b'{"batch": [', b""])
def test_beacon_batch_that_is_not_json_is_400(tracker, raw):
    response = beacon(tracker.client, f"?writeKey={tracker.write_key}", raw)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in ("invalid_json", "empty_body")
    assert not Event.objects.exists()


# --- Node SDK's request: gzip declared as a form ------------------------------------------------


def test_gzipped_batch_declared_as_a_form_is_stored(tracker):
    """What @rudderstack/rudder-sdk-node sends by default: a gzipped JSON buffer that its HTTP
    client labels application/x-www-form-urlencoded."""
    payload = {"batch": [message("track")], "sentAt": iso(timezone.now())}

    body = ok(
        send(
            tracker,
            "batch",
            None,
            raw=gzip.compress(orjson.dumps(payload)),
            HTTP_CONTENT_ENCODING="gzip",
            content_type="application/x-www-form-urlencoded",
        )
    )

    assert body["accepted"] == 1


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress"])
def test_unknown_encoding_is_415_and_stores_nothing(tracker, encoding):
    payload = {"batch": [message("track")]}

    body = failed(
        send(tracker, "batch", payload, HTTP_CONTENT_ENCODING=encoding),
        415,
        "unsupported_media_type",
    )

    assert encoding in body["error"]["message"]
    assert not Event.objects.exists()


# --- source configuration -----------------------------------------------------------------------


def test_source_config_answers_what_analytics_js_needs(tracker, source):
    response = tracker.client.get(
        "/sourceConfig/?p=npm&v=3.34.1&writeKey=ignored", HTTP_AUTHORIZATION=basic(source.write_key)
    )

    assert response.status_code == 200, response.content
    config = response.json()["source"]
    assert config["id"] == str(source.pk)
    assert config["name"] == source.name
    assert config["writeKey"] == source.write_key
    assert config["enabled"] is True
    assert config["destinations"] == []
    assert isinstance(config["config"], dict)
    # The SDK's own error and metrics reporting stay off: nothing is sent elsewhere.
    assert config["config"]["statsCollection"]["errors"]["enabled"] is False
    assert not Event.objects.exists()


def test_source_config_without_a_trailing_slash(tracker, source):
    response = tracker.client.get("/sourceConfig", HTTP_AUTHORIZATION=basic(source.write_key))

    assert response.status_code == 200
    assert response.json()["source"]["id"] == str(source.pk)


@pytest.mark.parametrize("auth", [None, basic("wrong"), basic(""), "Basic !!!"])
def test_source_config_without_a_valid_key_is_401(db, auth):
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}

    response = Client().get("/sourceConfig/", **headers)

    body = failed(response, 401, "unauthorized")
    assert "source" not in body


def test_source_config_of_a_disabled_source_is_401(db):
    source = source_services.source_set_enabled(
        source=source_services.source_create(name="Off"), enabled=False
    )

    response = Client().get("/sourceConfig/", HTTP_AUTHORIZATION=basic(source.write_key))

    failed(response, 401, "source_disabled")


def test_source_config_from_an_origin_the_source_refuses_is_403(db):
    source = source_services.source_create(name="Shop", allowed_origins=[SHOP])

    refused = Client().get(
        "/sourceConfig/",
        HTTP_AUTHORIZATION=basic(source.write_key),
        HTTP_ORIGIN="https://evil.example.org",
    )
    allowed = Client().get(
        "/sourceConfig/", HTTP_AUTHORIZATION=basic(source.write_key), HTTP_ORIGIN=SHOP
    )

    failed(refused, 403, "origin_not_allowed")
    assert allowed.status_code == 200
    assert allowed["Access-Control-Allow-Origin"] == SHOP


def test_source_config_is_read_only(tracker, source):
    response = tracker.client.post(
        "/sourceConfig/", b"{}", content_type="application/json", HTTP_AUTHORIZATION=basic("k")
    )

    failed(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


# --- CORS: what the trackers' preflights ask for -------------------------------------------------


def preflight(path: str, headers: str, method: str = "POST") -> Any:
    return Client().options(
        path,
        HTTP_ORIGIN=SHOP,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=headers,
    )


def allowed_headers(response: Any) -> set[str]:
    return {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}


@pytest.mark.parametrize(
    ("path", "asked"),
    [
        ("/v1/page", "anonymousid,authorization,content-type,sentat"),
        ("/v1/batch", "authorization,content-type,rsa-retry-attempt,rsa-retry-reason,sentat"),
        ("/track", "content-type,x-timestamp"),
        ("/api/track", "content-type,x-write-key,x-requested-with"),
        ("/beacon/v1/batch", "content-type"),
    ],
)
def test_tracking_preflights_allow_the_headers_asked_for(db, path, asked):
    response = preflight(path, asked)

    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert set(asked.split(",")) <= allowed_headers(response)
    assert "Access-Control-Request-Headers" in response["Vary"]


def test_source_config_preflight_allows_get_with_authorization(db):
    response = preflight("/sourceConfig/", "authorization", method="GET")

    assert response.status_code == 204
    assert "GET" in response["Access-Control-Allow-Methods"]
    assert "authorization" in allowed_headers(response)


def test_preflight_ignores_header_names_that_are_not_tokens_and_bounds_their_number(db):
    asked = "x-ok, bad header, x\r\ny, " + ", ".join(f"x-h{i}" for i in range(100))

    response = preflight("/v1/track", asked)

    allowed = allowed_headers(response)
    assert "x-ok" in allowed
    assert not any(" " in name or "\n" in name for name in allowed)
    assert len(allowed) <= 4 + 32
