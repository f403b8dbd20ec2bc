"""Tracardi's own browser tracker (tracardi-js) on a site of another origin: its preflight and
its requests as it sends them (src/apiCall.js: fetch with Content-Type and x-timestamp headers,
credentials omitted; src/tracardi.js: the payload, time.create per event, the answer's profile
id kept and sent back by the next page)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from django.test import Client, TestCase
from django.utils import timezone

from apps.events.models import Event
from apps.profiles import selectors as profile_selectors
from apps.sources import services as source_services

SITE = "https://blog.example.org"
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)


@pytest.fixture
def site_source(db: None) -> Any:
    return source_services.source_create(name="Blog", allowed_origins=[SITE])


def iso_ms(moment: datetime) -> str:
    """toUTCISOStringWithMilliseconds of tracardi-js: 2026-01-02T03:04:05.678Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def tracker_payload(
    source: Any, session_id: str, profile_id: str | None, *events: dict[str, Any]
) -> dict[str, Any]:
    """The body tracardi-js posts (EventsList.get: Event.static + events of Event.dynamic)."""
    now = timezone.now()
    return {
        "source": {"id": str(source.pk)},
        "context": {
            "time": {"local": iso_ms(now), "tz": "Europe/Warsaw"},
            "browser": {"local": {"browser": {"name": "chrome", "userAgent": CHROME}}},
            "screen": {"local": {"width": 1920, "height": 1080}},
        },
        "profile": {"id": profile_id} if profile_id else None,
        "device": {"id": "6f1d1f7e-9c53-4d4e-8bd2-0a9b3b1f2c11"},
        "session": {"id": session_id},
        "events": list(events),
    }


def tracker_event(kind: str, created: datetime, **properties: Any) -> dict[str, Any]:
    return {
        "time": {"create": iso_ms(created)},
        "properties": properties,
        "type": kind,
        "context": {"page": {"url": f"{SITE}/post", "path": "/post", "title": "A post"}},
    }


def browser_preflight(client: Client) -> Any:
    # What Chromium sends before the fetch: the non-safelisted headers, lowercased and sorted.
    return client.options(
        "/track",
        HTTP_ORIGIN=SITE,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type,x-timestamp",
        HTTP_USER_AGENT=CHROME,
    )


def tracker_post(client: Client, payload: dict[str, Any]) -> Any:
    # request() of src/apiCall.js: JSON with Content-Type and x-timestamp, no credentials.
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.generic(
            "POST",
            "/track",
            orjson.dumps(payload),
            content_type="application/json",
            HTTP_ORIGIN=SITE,
            HTTP_X_TIMESTAMP=str(int(timezone.now().timestamp() * 1000)),
            HTTP_USER_AGENT=CHROME,
        )


def test_preflight_from_another_origin_allows_the_tracker_request(site_source):
    response = browser_preflight(Client())

    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == SITE
    assert "POST" in response["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "x-timestamp"} <= allowed
    assert not Event.objects.exists()


def test_two_pages_land_once_each_with_their_own_times_in_one_profile(site_source):
    client = Client()
    session_id = str(uuid.uuid4())
    first_at = timezone.now() - timedelta(minutes=3)
    second_at = timezone.now() - timedelta(minutes=1)

    # First page: no profile yet (tracardi-js sends profile: null); the answer gives one.
    assert browser_preflight(client).status_code == 204
    first = tracker_post(
        client,
        tracker_payload(
            site_source,
            session_id,
            None,
            tracker_event("page-view", first_at, title="A post"),
            tracker_event("scroll-depth", first_at + timedelta(seconds=20), depth=50),
        ),
    )
    assert first.status_code == 200, first.content
    assert first["Access-Control-Allow-Origin"] == SITE
    profile_id = first.json()["profile"]["id"]
    assert profile_id

    # Next page: the tracker sends the profile id it kept from the answer.
    second = tracker_post(
        client,
        tracker_payload(
            site_source,
            session_id,
            profile_id,
            tracker_event("page-view", second_at, title="Another post"),
        ),
    )
    assert second.status_code == 200, second.content
    assert second.json()["profile"]["id"] == profile_id

    events = list(Event.objects.order_by("timestamp"))
    assert [e.event_name for e in events] == ["page-view", "scroll-depth", "page-view"]
    assert {e.distinct_id for e in events} == {profile_id}
    # Each with the time the tracker gave it (time.create), not the time received.
    assert abs(events[0].timestamp - first_at) < timedelta(milliseconds=2)
    assert abs(events[1].timestamp - (first_at + timedelta(seconds=20))) < timedelta(milliseconds=2)
    assert abs(events[2].timestamp - second_at) < timedelta(milliseconds=2)
    profile = profile_selectors.profile_get_for_distinct_id(profile_id)
    assert profile is not None
    assert Event.objects.filter(event_name="page-view").count() == 2


def test_a_retried_request_is_stored_once(site_source):
    client = Client()
    payload = tracker_payload(
        site_source, str(uuid.uuid4()), None, tracker_event("page-view", timezone.now())
    )
    payload["events"][0]["id"] = "evt-1"
    payload["profile"] = {"id": "visitor-1"}

    first = tracker_post(client, payload)
    again = tracker_post(client, payload)

    assert first.json()["accepted"] == 1
    assert again.json()["duplicates"] == 1
    assert Event.objects.count() == 1


def test_time_insert_is_used_when_it_is_the_only_time(site_source):
    inserted = timezone.now() - timedelta(minutes=5)
    event = tracker_event("page-view", inserted)
    event["time"] = {"insert": iso_ms(inserted)}

    response = tracker_post(Client(), tracker_payload(site_source, str(uuid.uuid4()), None, event))

    assert response.status_code == 200, response.content
    assert abs(Event.objects.get().timestamp - inserted) < timedelta(milliseconds=2)


def test_time_create_in_the_future_gives_the_time_received_with_a_warning(site_source):
    event = tracker_event("page-view", timezone.now() + timedelta(days=30))

    response = tracker_post(Client(), tracker_payload(site_source, str(uuid.uuid4()), None, event))

    assert response.status_code == 200, response.content
    assert any("future" in w["warning"] for w in response.json()["warnings"])
    assert abs(Event.objects.get().timestamp - timezone.now()) < timedelta(minutes=1)


def test_a_time_create_that_is_not_a_time_is_rejected_by_index(site_source):
    good = tracker_event("page-view", timezone.now())
    bad = tracker_event("page-view", timezone.now())
    bad["time"] = {"create": "yesterday-ish"}

    response = tracker_post(
        Client(), tracker_payload(site_source, str(uuid.uuid4()), None, good, bad)
    )

    assert response.status_code == 200, response.content
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "time.create")]
    assert Event.objects.count() == 1


def test_from_an_origin_the_source_does_not_allow_nothing_is_stored(site_source):
    payload = tracker_payload(
        site_source, str(uuid.uuid4()), None, tracker_event("page-view", timezone.now())
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().generic(
            "POST",
            "/track",
            orjson.dumps(payload),
            content_type="application/json",
            HTTP_ORIGIN="https://evil.example.net",
            HTTP_X_TIMESTAMP="1",
        )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"
    assert not Event.objects.exists()
