"""The management API: token auth, cursor pagination, filters, errors, schema, health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from apps.events.models import Event
from apps.sources import services as source_services
from tests.clients import TrackingClient
from tests.users import client_with_perms

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def track(tracker, *events):
    response = tracker.post({"batch": list(events)})
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == len(events)


@pytest.fixture
def events(tracker, source):
    """Six events from two people on one source, plus one on a second source."""
    track(
        tracker,
        {"event_name": "page_viewed", "distinct_id": "ann", "timestamp": at(0)},
        {"event_name": "signed_up", "distinct_id": "ann", "timestamp": at(1), "category": "auth"},
        {"event_name": "page_viewed", "distinct_id": "bob", "timestamp": at(2)},
        {"event_name": "page_viewed", "distinct_id": "ann", "timestamp": at(3)},
        {"event_name": "purchased", "distinct_id": "bob", "timestamp": at(4), "category": "shop"},
        {"event_name": "page_viewed", "distinct_id": "bob", "timestamp": at(5)},
    )
    app = source_services.source_create(name="App")
    track(
        TrackingClient(Client(), app.write_key),
        {"event_name": "app_opened", "distinct_id": "ann", "timestamp": at(6)},
    )
    return app


def names(response):
    assert response.status_code == 200, response.content
    return [row["event_name"] for row in response.json()["results"]]


# --- Authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/sessions", "/api/v1/sources"])
def test_endpoints_need_a_token(db, path):
    response = APIClient().get(path)

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "not_authenticated"
    assert error["message"]
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/sessions", "/api/v1/sources"])
def test_a_wrong_token_is_refused(db, path):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = client.get(path)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/sessions", "/api/v1/sources"])
def test_a_non_staff_token_is_forbidden(db, django_user_model, path):
    client = client_with_perms(staff=False)

    response = client.get(path)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_the_write_key_is_not_a_management_token(api_client, source):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {source.write_key}")

    assert client.get("/api/v1/events").status_code == 401


# --- Events -----------------------------------------------------------------------------------


def test_events_newest_first_with_their_session(api_client, events):
    response = api_client.get("/api/v1/events")

    assert names(response) == [
        "app_opened",
        "page_viewed",
        "purchased",
        "page_viewed",
        "page_viewed",
        "signed_up",
        "page_viewed",
    ]
    first = response.json()["results"][0]
    assert first["distinct_id"] == "ann"
    assert first["source"] == str(events.pk)
    assert first["timestamp"].startswith("2026-03-01T18:00:00")
    assert first["processed_at"] is not None
    assert first["session"]["id"]
    assert first["session"]["started_at"].startswith("2026-03-01T18:00:00")


def test_events_cursor_pagination_follows_next_links(api_client, events):
    seen = []
    url = "/api/v1/events?page_size=3"
    pages = 0
    while url:
        body = api_client.get(url).json()
        assert len(body["results"]) <= 3
        seen += [(row["distinct_id"], row["timestamp"]) for row in body["results"]]
        url = body["next"]
        pages += 1

    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert seen == sorted(seen, key=lambda row: row[1], reverse=True)


def test_events_page_size_is_capped(api_client, events):
    body = api_client.get("/api/v1/events?page_size=100000").json()

    assert len(body["results"]) == 7
    assert body["next"] is None


def test_events_cursor_is_stable_when_new_events_arrive(api_client, events, tracker):
    first = api_client.get("/api/v1/events?page_size=4").json()
    track(tracker, {"event_name": "late", "distinct_id": "cat", "timestamp": at(10)})

    second = api_client.get(first["next"]).json()

    assert [r["timestamp"][:16] for r in second["results"]] == [
        "2026-03-01T14:00",
        "2026-03-01T13:00",
        "2026-03-01T12:00",
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"distinct_id": "bob"}, ["page_viewed", "purchased", "page_viewed"]),
        ({"event_name": "page_viewed", "distinct_id": "ann"}, ["page_viewed", "page_viewed"]),
        ({"category": "shop"}, ["purchased"]),
        ({"category": "auth"}, ["signed_up"]),
        ({"after": at(4), "before": at(6)}, ["page_viewed", "purchased"]),
        ({"after": "2026-03-01T16:00:00Z"}, ["app_opened", "page_viewed", "purchased"]),
        ({"before": "2026-03-01T13:00:00+00:00"}, ["page_viewed"]),
        ({"distinct_id": "nobody"}, []),
    ],
)
def test_event_filters(api_client, events, query, expected):
    assert names(api_client.get("/api/v1/events", query)) == expected


def test_events_filtered_by_source(api_client, events, source):
    assert names(api_client.get("/api/v1/events", {"source": str(events.pk)})) == ["app_opened"]
    assert len(names(api_client.get("/api/v1/events", {"source": str(source.pk)}))) == 6


def test_one_event_by_id(api_client, events):
    event = Event.objects.get(event_name="signed_up")

    response = api_client.get(f"/api/v1/events/{event.pk}")

    assert response.status_code == 200
    assert response.json()["category"] == "auth"
    missing = api_client.get("/api/v1/events/999999999")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/api/v1/events", {"after": "yesterday"}, "after"),
        ("/api/v1/events", {"before": "2026-13-45"}, "before"),
        ("/api/v1/events", {"source": "not-a-uuid"}, "source"),
        ("/api/v1/events", {"session": "1234"}, "session"),
        ("/api/v1/events", {"after": "\x00"}, "after"),
        ("/api/v1/sessions", {"started_after": "soon"}, "started_after"),
        ("/api/v1/sessions", {"source": "nope"}, "source"),
    ],
)
def test_invalid_filters_are_a_400_in_the_error_shape(api_client, db, path, query, field):
    response = api_client.get(path, query)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["field"] == field
    assert error["message"]


def test_a_tampered_cursor_is_a_404_not_a_500(api_client, events):
    response = api_client.get("/api/v1/events", {"cursor": "garbage!!"})

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid cursor"


def test_events_list_query_count_does_not_grow_with_the_page(
    api_client, events, tracker, django_assert_num_queries
):
    # Token lookup (with its user) + one page of events joined to their sessions.
    with django_assert_num_queries(2):
        assert len(api_client.get("/api/v1/events").json()["results"]) == 7

    track(
        tracker,
        *[
            {"event_name": "scrolled", "distinct_id": f"user-{i}", "timestamp": at(20 + i)}
            for i in range(30)
        ],
    )
    with django_assert_num_queries(2):
        results = api_client.get("/api/v1/events").json()["results"]
    assert len(results) == 37
    assert all(row["session"] for row in results)


def test_sessions_and_sources_query_counts(api_client, events, django_assert_num_queries):
    with django_assert_num_queries(2):
        assert api_client.get("/api/v1/sessions").status_code == 200
    with django_assert_num_queries(2):
        assert api_client.get("/api/v1/sources").status_code == 200


# --- Sessions ---------------------------------------------------------------------------------


def session_rows(response):
    assert response.status_code == 200, response.content
    return [(row["distinct_id"], row["started_at"][:16]) for row in response.json()["results"]]


def test_sessions_newest_first_and_filters(api_client, events, source):
    # Events hours apart are separate visits (30 minute inactivity timeout).
    everything = session_rows(api_client.get("/api/v1/sessions"))
    assert everything == [
        ("ann", "2026-03-01T18:00"),
        ("bob", "2026-03-01T17:00"),
        ("bob", "2026-03-01T16:00"),
        ("ann", "2026-03-01T15:00"),
        ("bob", "2026-03-01T14:00"),
        ("ann", "2026-03-01T13:00"),
        ("ann", "2026-03-01T12:00"),
    ]

    bob = session_rows(api_client.get("/api/v1/sessions", {"distinct_id": "bob"}))
    assert [started for _, started in bob] == [
        "2026-03-01T17:00",
        "2026-03-01T16:00",
        "2026-03-01T14:00",
    ]
    app = session_rows(api_client.get("/api/v1/sessions", {"source": str(events.pk)}))
    assert app == [("ann", "2026-03-01T18:00")]
    website = api_client.get("/api/v1/sessions", {"source": str(source.pk)}).json()["results"]
    assert len(website) == 6
    assert all(row["source"] == str(source.pk) for row in website)
    window = session_rows(
        api_client.get("/api/v1/sessions", {"started_after": at(2), "started_before": at(4)})
    )
    assert window == [("ann", "2026-03-01T15:00"), ("bob", "2026-03-01T14:00")]


def test_sessions_pagination(api_client, events):
    first = api_client.get("/api/v1/sessions", {"page_size": 5}).json()
    second = api_client.get(first["next"]).json()

    assert len(first["results"]) == 5
    assert len(second["results"]) == 2
    assert second["next"] is None
    ids = [row["id"] for row in first["results"] + second["results"]]
    assert len(set(ids)) == 7


# --- Sources ----------------------------------------------------------------------------------


def test_sources_list_and_filters(api_client, events, source):
    source_services.source_create(name="Kiosk", ephemeral=True)

    rows = api_client.get("/api/v1/sources").json()["results"]
    assert [row["name"] for row in rows] == ["Kiosk", "App", "Website"]  # newest first
    website = rows[2]
    assert website["id"] == str(source.pk)
    assert website["write_key"] == source.write_key
    assert website["bridge"] == "rest"
    ephemeral = api_client.get("/api/v1/sources", {"ephemeral": "true"}).json()["results"]
    assert [row["name"] for row in ephemeral] == ["Kiosk"]
    detail = api_client.get(f"/api/v1/sources/{source.pk}")
    assert detail.json()["name"] == "Website"


def test_the_management_api_is_read_only(api_client, source):
    created = api_client.post("/api/v1/sources", {"name": "Sneaky"}, format="json")
    assert created.status_code == 405
    assert created.json()["error"]["code"] == "method_not_allowed"
    deleted = api_client.delete(f"/api/v1/sources/{source.pk}")
    assert deleted.status_code == 405


# --- Schema, docs, health ---------------------------------------------------------------------


def test_openapi_schema_lists_the_management_api_and_the_tracking_endpoint(db):
    response = Client().get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    assert {"/api/v1/events/", "/api/v1/sessions/", "/api/v1/sources/"} <= set(paths)
    event_params = {p["name"] for p in paths["/api/v1/events/"]["get"]["parameters"]}
    assert {"distinct_id", "event_name", "source", "category", "after", "before"} <= event_params
    assert {"cursor", "page_size"} <= event_params

    track = paths["/api/track"]["post"]
    assert set(track["responses"]) >= {"200", "400", "401", "413", "429"}
    body = track["requestBody"]["content"]["application/json"]["schema"]
    assert body  # one event or {"batch": [...]}
    schemes = schema["components"]["securitySchemes"]
    assert {"writeKeyBasic", "writeKeyHeader", "tokenAuth"} <= set(schemes)


def test_api_docs_page_renders_with_local_assets(db):
    response = Client().get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn.jsdelivr" not in html
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")


def test_healthz_and_readyz(db):
    client = Client()

    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert (body["status"], body["database"]) == ("ok", "ok")
    if settings.REDIS_URL:
        assert body["redis"] == "ok"
        assert set(body["queues"]) == {"default", "processing", "segments", "workflows"}
    else:
        assert body["redis"] == "not configured"


def test_readyz_is_503_when_the_database_is_down(db, monkeypatch):
    from django.db import OperationalError

    def broken_cursor(*args, **kwargs):
        raise OperationalError("connection refused to db.internal:5432")

    with monkeypatch.context() as patch:
        patch.setattr(connection, "cursor", broken_cursor)
        response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "db.internal" not in response.content.decode()  # no internals to anonymous callers


def test_health_checks_are_not_redirected_to_https(db, settings):
    settings.SECURE_SSL_REDIRECT = True
    client = Client()  # a new client loads the middleware with these settings

    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/admin/").status_code == 301


def test_private_traits_in_identify_events_are_hidden_without_the_permission(
    tracker, db, django_user_model
):
    response = tracker.post(
        {
            "distinct_id": "ann",
            "traits": {"plan": "pro", "email": "ann@example.com"},
            "private_traits": {"phone": "+33 6 12 34 56 78"},
        },
        path="/api/identify",
    )
    assert response.status_code == 200, response.content
    client = client_with_perms("events.view_event")

    [event] = client.get("/api/v1/events", {"event_name": "$identify"}).json()["results"]

    assert "$set_private" not in event["properties"]
    assert event["properties"]["$set"] == {"plan": "pro"}  # email is a private trait name
    assert "+33 6 12 34 56 78" not in str(event)


def test_private_traits_in_identify_events_are_shown_with_the_permission(tracker, api_client):
    tracker.post(
        {"distinct_id": "ann", "private_traits": {"phone": "+33 6 12 34 56 78"}},
        path="/api/identify",
    )

    [event] = api_client.get("/api/v1/events", {"event_name": "$identify"}).json()["results"]

    assert event["properties"]["$set_private"] == {"phone": "+33 6 12 34 56 78"}


def test_tracking_endpoints_are_not_redirected_to_https(tracker, settings):
    """SDKs would turn a redirected POST into a GET and lose the events."""
    settings.SECURE_SSL_REDIRECT = True
    tracker.client = Client()  # a new client loads the middleware with these settings

    for path in ("/api/track", "/api/identify", "/v1/track", "/v1/batch", "/track"):
        response = tracker.client.post(path, data="{}", content_type="application/json")
        assert response.status_code != 301, path
