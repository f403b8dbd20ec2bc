"""Tracardi-style collection: POST /track with the source id as the key, profile and session ids
handed back to the client, events by type, errors and warnings by index."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import Client
from hypothesis import event, given
from hypothesis import strategies as st

from apps.events.models import Event, Session
from apps.profiles import selectors as profile_selectors
from apps.sources import services as source_services

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


def track(tracker: Any, payload: Any, **kwargs: Any) -> Any:
    """Posted without any write key: the source id in the body is the key."""
    return tracker.post(payload, path="/track", auth="none", **kwargs)


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    return response.json()


def request(source: Any, *events: Any, **fields: Any) -> dict[str, Any]:
    return {"source": {"id": str(source.pk)}, "events": list(events), **fields}


def test_events_are_stored_under_generated_profile_and_session_ids(tracker, source):
    body = ok(
        track(
            tracker,
            request(
                source,
                {"type": "page-view", "properties": {"title": "Home"}},
                {"type": "product-added", "properties": {"sku": "A-1", "price": 10}},
                context={
                    "page": {"url": "https://shop.example/", "referrer": "https://t.co/x"},
                    "timezone": "Europe/Warsaw",
                },
                properties={"site": "shop"},
            ),
            HTTP_USER_AGENT=FIREFOX_LINUX,
        )
    )

    profile_id, session_id = body["profile"]["id"], body["session"]["id"]
    assert profile_id
    assert session_id
    assert profile_id != session_id
    assert body["errors"] == []
    assert body["warnings"] == []
    events = list(Event.objects.order_by("id"))
    assert body["events"] == [e.message_id for e in events]
    assert [e.event_name for e in events] == ["page-view", "product-added"]
    assert {e.distinct_id for e in events} == {profile_id}
    assert {e.session_key for e in events} == {session_id}
    # the request's properties are shared by its events; the event's own win
    assert events[0].properties == {"site": "shop", "title": "Home"}
    assert events[1].properties == {"site": "shop", "sku": "A-1", "price": 10}
    assert events[0].context["page"]["url"] == "https://shop.example/"

    session = Session.objects.get()
    assert session.key == session_id
    assert session.distinct_id == profile_id
    assert session.event_count == 2
    assert session.landing_page == "https://shop.example/"
    assert session.referring_domain == "t.co"
    assert (session.browser, session.os) == ("Firefox", "Linux")
    assert session.timezone == "Europe/Warsaw"
    assert {e.session_id for e in events} == {session.id}
    profile = profile_selectors.profile_get_for_distinct_id(profile_id)
    assert profile is not None
    assert profile.event_count == 2


def test_the_returned_ids_continue_the_same_profile_and_session(tracker, source):
    first = ok(track(tracker, request(source, {"type": "page-view"})))

    second = ok(
        track(
            tracker,
            request(
                source,
                {"type": "purchase", "properties": {"total": 99}},
                profile=first["profile"],
                session=first["session"],
            ),
        )
    )

    assert second["profile"] == first["profile"]
    assert second["session"] == first["session"]
    assert Session.objects.count() == 1
    assert Session.objects.get().event_count == 2
    profile = profile_selectors.profile_get_for_distinct_id(first["profile"]["id"])
    assert profile.event_count == 2
    assert set(Event.objects.values_list("distinct_id", flat=True)) == {first["profile"]["id"]}


def test_given_ids_are_echoed_and_used(tracker, source):
    body = ok(
        track(
            tracker,
            request(
                source,
                {"type": "login"},
                profile={"id": "crm-123"},
                session={"id": "sess-abc"},
            ),
        )
    )

    assert body["profile"] == {"id": "crm-123"}
    assert body["session"] == {"id": "sess-abc"}
    stored = Event.objects.get()
    assert (stored.distinct_id, stored.session_key) == ("crm-123", "sess-abc")
    assert stored.session.key == "sess-abc"


def test_a_new_session_id_for_the_same_profile_starts_a_new_session(tracker, source):
    ok(track(tracker, request(source, {"type": "a"}, profile={"id": "p"}, session={"id": "s1"})))
    ok(track(tracker, request(source, {"type": "b"}, profile={"id": "p"}, session={"id": "s2"})))

    assert sorted(Session.objects.values_list("key", flat=True)) == ["s1", "s2"]
    assert profile_selectors.profile_get_for_distinct_id("p").event_count == 2


def test_event_context_and_id(tracker, source):
    body = ok(
        track(
            tracker,
            request(
                source,
                {
                    "id": "evt-1",
                    "type": "click",
                    "context": {"page": {"url": "https://a.example/own"}},
                    "options": {"async": True},
                },
                context={"page": {"url": "https://a.example/shared"}, "locale": "pl-PL"},
            ),
        )
    )

    stored = Event.objects.get()
    assert body["events"] == ["evt-1"]
    assert stored.message_id == "evt-1"
    assert stored.context["page"] == {"url": "https://a.example/own"}
    assert stored.context["locale"] == "pl-PL"


def test_a_resent_request_is_stored_once(tracker, source):
    payload = request(
        source, {"id": "e1", "type": "a"}, {"id": "e2", "type": "b"}, profile={"id": "p"}
    )
    ok(track(tracker, payload))

    body = ok(track(tracker, payload))

    assert (body["accepted"], body["duplicates"]) == (0, 2)
    assert Event.objects.count() == 2


def test_events_without_a_usable_type_are_rejected_by_index(tracker, source):
    body = ok(
        track(
            tracker,
            request(
                source,
                {"type": "good", "properties": {"n": 1}},
                {"properties": {"n": 2}},
                {"type": ""},
                {"type": 5},
                "not an event",
                {"type": "bad-props", "properties": [1]},
                {"type": "bad-context", "context": "x"},
                {"type": "also-good"},
            ),
        )
    )

    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "type"),
        (2, "type"),
        (3, "type"),
        (4, None),
        (5, "properties"),
        (6, "context"),
    ]
    assert len(body["events"]) == 2
    assert sorted(Event.objects.values_list("event_name", flat=True)) == ["also-good", "good"]


def test_no_valid_event_is_400_with_the_errors_and_nothing_stored(tracker, source):
    response = track(tracker, request(source, {"properties": {}}, {"type": None}))

    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "no_valid_event"
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(0, "type"), (1, "type")]
    assert body["events"] == []
    assert not Event.objects.exists()
    assert not Session.objects.exists()


# --- the source id as the key -------------------------------------------------------------------


def test_no_write_key_is_needed(tracker, source):
    response = Client().post(
        "/track", request(source, {"type": "a"}), content_type="application/json"
    )

    assert response.status_code == 200, response.content
    assert Event.objects.get().event_name == "a"


@pytest.mark.parametrize(
    "source_field",
    [None, {}, {"id": ""}, {"id": None}, {"id": 5}, {"id": "not-a-uuid"}, "string", [1]],
)
def test_missing_or_malformed_source_id_is_401(tracker, source_field):
    payload: dict[str, Any] = {"events": [{"type": "a"}]}
    if source_field is not None:
        payload["source"] = source_field

    response = track(tracker, payload)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert not Event.objects.exists()


def test_unknown_source_id_is_401(tracker):
    response = track(tracker, {"source": {"id": str(uuid.uuid4())}, "events": [{"type": "a"}]})

    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "unauthorized",
        "message": "Unknown source",
        "field": "source.id",
    }
    assert not Event.objects.exists()


def test_disabled_source_is_401(tracker, source):
    source_services.source_set_enabled(source=source, enabled=False)

    response = track(tracker, request(source, {"type": "a"}))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "source_disabled"
    assert not Event.objects.exists()


def test_source_id_in_upper_case_is_the_same_source(tracker, source):
    payload = request(source, {"type": "a"})
    payload["source"]["id"] = str(source.pk).upper()

    ok(track(tracker, payload))
    assert Event.objects.get().source_id == source.pk


def test_a_write_key_of_another_source_does_not_override_the_source_id(tracker, source):
    other = source_services.source_create(name="Other")

    response = Client().post(
        "/track",
        request(source, {"type": "a"}),
        content_type="application/json",
        HTTP_X_WRITE_KEY="wk_unknown",
    )
    assert response.status_code == 401  # an unknown key is refused, not ignored

    response = Client().post(
        "/track",
        request(source, {"type": "a"}),
        content_type="application/json",
        HTTP_X_WRITE_KEY=other.write_key,
    )
    assert response.status_code == 401
    assert response.json()["error"]["field"] == "source.id"
    assert not Event.objects.exists()


# --- bad requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"events": []}, "events"),
        ({"events": {"type": "a"}}, "events"),
        ({"events": None}, "events"),
        ({"profile": "p-1"}, "profile"),
        ({"profile": {"id": "null"}}, "profile.id"),
        ({"profile": {"id": {"x": 1}}}, "profile.id"),
        ({"session": {"id": ""}}, "session.id"),
        ({"session": [1]}, "session"),
        ({"context": "x"}, "context"),
        ({"properties": [1]}, "properties"),
    ],
)
def test_malformed_requests_are_400_with_the_field(tracker, source, fields, field):
    payload = {**request(source, {"type": "a"}), **fields}

    response = track(tracker, payload)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert not Event.objects.exists()


@pytest.mark.parametrize("raw", [b"{oops", b"[]", b'"x"', b"", b"null"])
def test_unreadable_bodies_are_4xx(tracker, raw):
    response = track(tracker, None, raw=raw)

    assert response.status_code in (400, 401)
    assert "error" in response.json()
    assert not Event.objects.exists()


def test_too_many_events_is_413(tracker, source, settings):
    settings.CDP_MAX_BATCH_EVENTS = 3

    response = track(tracker, request(source, *[{"type": "a"}] * 4))

    assert response.status_code == 413
    assert not Event.objects.exists()


def test_gzip_body(tracker, source):
    ok(track(tracker, request(source, {"type": "a"}), gzip_body=True))

    assert Event.objects.count() == 1


# --- never a 500 --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
event_values = st.builds(
    lambda base, changes: {**base, **changes},
    st.fixed_dictionaries({"type": st.sampled_from(["a", "b"])}),
    st.dictionaries(
        st.sampled_from(["type", "properties", "context", "options", "id", "time"]),
        json_values,
        max_size=2,
    ),
)


@given(
    events=st.lists(event_values, max_size=4) | json_values,
    extra=st.dictionaries(
        st.sampled_from(["profile", "session", "context", "properties", "options"]),
        st.fixed_dictionaries({"id": st.sampled_from(["p-1", "s-1", 7])})
        | st.fixed_dictionaries({"id": json_values})
        | json_values,
        max_size=2,
    ),
)
def test_random_requests_never_get_a_500(tracker, source, events, extra):
    before = Event.objects.count()
    payload = {"source": {"id": str(source.pk)}, "events": events, **extra}

    response = track(tracker, None, raw=json.dumps(payload).encode())

    assert response.status_code in (200, 400, 413), response.content
    event(f"status {response.status_code}")
    body = response.json()
    if response.status_code == 200:
        assert Event.objects.count() - before == body["accepted"]
        assert isinstance(body["profile"]["id"], str)
    else:
        assert isinstance(body["error"]["message"], str)
        assert Event.objects.count() == before


def test_a_known_session_without_a_profile_continues_its_person(tracker, source):
    first = ok(track(tracker, request(source, {"type": "a"}, session={"id": "kept"})))

    second = ok(track(tracker, request(source, {"type": "b"}, session={"id": "kept"})))

    assert second["profile"] == first["profile"]
    assert set(Event.objects.values_list("distinct_id", flat=True)) == {first["profile"]["id"]}
    assert Session.objects.get().event_count == 2
