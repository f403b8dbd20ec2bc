"""The Segment HTTP tracking API (/v1/*): what each call stores, what processing makes of it,
authentication, dedupe, batches, timestamps, limits and the error contract."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from django.test import Client
from django.utils import timezone
from hypothesis import event, given
from hypothesis import strategies as st

from apps.events.models import Event, Session
from apps.profiles import selectors as profile_selectors
from apps.profiles.models import Group
from apps.sources import services as source_services

CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)


def send(tracker: Any, call: str, payload: Any, **kwargs: Any) -> Any:
    return tracker.post(payload, path=f"/v1/{call}", **kwargs)


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    return body


def segmentio_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The shape Segment's SDKs parse: top-level code and message (analytics-python raises
    APIError(status, payload["code"], payload["message"]))."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body["error"]["code"] == code
    return body


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def profile_of(distinct_id: str) -> Any:
    profile = profile_selectors.profile_get_for_distinct_id(distinct_id)
    assert profile is not None, f"no profile for {distinct_id}"
    return profile


# --- each call ----------------------------------------------------------------------------------


def test_track_stores_the_event_as_sent_and_processes_it(tracker):
    body = ok(
        send(
            tracker,
            "track",
            {
                "userId": "user-1",
                "anonymousId": "anon-1",
                "event": "Order Completed",
                "properties": {"revenue": 19.99, "currency": "EUR", "url": "mine"},
                "context": {
                    "ip": "203.0.113.9",
                    "locale": "de-DE",
                    "timezone": "Europe/Berlin",
                    "library": {"name": "analytics-ruby", "version": "2.4.0"},
                },
                "messageId": "m-track-1",
            },
        )
    )

    assert body == {
        "success": True,
        "accepted": 1,
        "duplicates": 0,
        "rejected": [],
        "warnings": [],
    }
    event = Event.objects.get()
    assert event.event_name == "Order Completed"
    assert event.distinct_id == "user-1"  # userId wins over anonymousId
    assert event.message_id == "m-track-1"
    # Segment properties are the customer's own: even names our trackers reserve stay.
    assert event.properties == {"revenue": 19.99, "currency": "EUR", "url": "mine"}
    assert event.context["ip"] == "203.0.113.9"
    assert event.context["library"] == {"name": "analytics-ruby", "version": "2.4.0"}
    assert event.processed_at is not None
    assert event.session.locale == "de-DE"
    assert event.session.timezone == "Europe/Berlin"
    assert profile_of("user-1").event_count == 1


def test_anonymous_id_is_the_distinct_id_without_a_user_id(tracker):
    ok(send(tracker, "track", {"anonymousId": "anon-9", "event": "Viewed"}))

    event = Event.objects.get()
    assert event.distinct_id == "anon-9"
    assert not profile_of("anon-9").identified


def test_numeric_ids_are_accepted_as_text(tracker):
    ok(send(tracker, "track", {"userId": 42, "event": "Viewed"}))

    assert Event.objects.get().distinct_id == "42"


def test_ip_defaults_to_the_request_address(tracker):
    ok(send(tracker, "track", {"userId": "u", "event": "Viewed"}, REMOTE_ADDR="198.51.100.4"))

    assert Event.objects.get().context["ip"] == "198.51.100.4"


def test_page_becomes_page_view_with_its_page_in_context_and_session(tracker):
    ok(
        send(
            tracker,
            "page",
            {
                "anonymousId": "anon-p",
                "name": "Pricing",
                "category": "Docs",
                "properties": {
                    "url": "https://shop.example/pricing?utm_source=ignored",
                    "path": "/pricing",
                    "title": "Pricing - Shop",
                    "referrer": "https://news.example.org/article",
                    "plan": "pro",
                },
                "context": {
                    "userAgent": CHROME_MAC,
                    "campaign": {"name": "spring", "source": "newsletter", "medium": "email"},
                    "locale": "fr-FR",
                    "timezone": "Europe/Paris",
                },
            },
        )
    )

    event = Event.objects.get()
    assert event.event_name == "page_view"
    assert event.properties["page_name"] == "Pricing"
    assert event.properties["page_category"] == "Docs"
    assert event.properties["plan"] == "pro"
    assert event.properties["url"] == "https://shop.example/pricing?utm_source=ignored"
    assert event.context["page"] == {
        "url": "https://shop.example/pricing?utm_source=ignored",
        "path": "/pricing",
        "title": "Pricing - Shop",
        "referrer": "https://news.example.org/article",
    }
    session = event.session
    assert session.landing_page == "https://shop.example/pricing?utm_source=ignored"
    assert session.referrer == "https://news.example.org/article"
    assert session.referring_domain == "news.example.org"
    # context.campaign wins over the URL's utm parameters
    assert (session.utm_source, session.utm_medium, session.utm_campaign) == (
        "newsletter",
        "email",
        "spring",
    )
    assert (session.browser, session.os, session.device_type) == ("Chrome", "Mac OS X", "desktop")
    assert (session.locale, session.timezone) == ("fr-FR", "Europe/Paris")


def test_page_context_page_is_kept_and_completed_by_properties(tracker):
    ok(
        send(
            tracker,
            "page",
            {
                "userId": "u-1",
                "properties": {"title": "From properties", "url": "https://a.example/x"},
                "context": {"page": {"url": "https://a.example/from-context"}},
            },
        )
    )

    page = Event.objects.get().context["page"]
    assert page == {"url": "https://a.example/from-context", "title": "From properties"}


def test_screen_becomes_screen_view(tracker):
    ok(
        send(
            tracker,
            "screen",
            {
                "userId": "u-s",
                "name": "Checkout",
                "properties": {"step": 2},
                "context": {"userAgent": IPHONE, "app": {"name": "Shop", "version": "3.1"}},
            },
        )
    )

    event = Event.objects.get()
    assert event.event_name == "screen_view"
    assert event.properties == {"step": 2, "screen_name": "Checkout"}
    assert event.context["app"] == {"name": "Shop", "version": "3.1"}
    assert event.session.device_type == "mobile"
    assert event.session.os == "iOS"


def test_identify_updates_traits_and_links_the_anonymous_history(tracker):
    ok(send(tracker, "track", {"anonymousId": "anon-2", "event": "Viewed Pricing"}))
    anonymous_profile = profile_of("anon-2")

    ok(
        send(
            tracker,
            "identify",
            {
                "userId": "user-2",
                "anonymousId": "anon-2",
                "traits": {"plan": "pro", "name": "Ann", "email": "ann@example.com"},
            },
        )
    )

    identify = Event.objects.get(event_name="$identify")
    assert identify.distinct_id == "user-2"
    profile = profile_of("user-2")
    assert profile_of("anon-2") == profile == anonymous_profile
    assert profile.identified
    assert profile.traits["plan"] == "pro"
    # personal data is kept apart
    assert profile.private_traits == {"name": "Ann", "email": "ann@example.com"}


def test_identify_without_user_id_sets_traits_of_the_anonymous_person(tracker):
    ok(send(tracker, "identify", {"anonymousId": "anon-3", "traits": {"plan": "free"}}))

    event = Event.objects.get()
    assert event.event_name == "$set"
    assert event.distinct_id == "anon-3"
    profile = profile_of("anon-3")
    assert profile.traits["plan"] == "free"
    assert not profile.identified


def test_group_joins_the_group_and_sets_its_traits(tracker):
    ok(
        send(
            tracker,
            "group",
            {
                "userId": "user-4",
                "groupId": "initech",
                "traits": {"name": "Initech", "employees": 420},
            },
        )
    )
    ok(send(tracker, "group", {"userId": "user-5", "groupId": "initech", "traits": {"plan": "x"}}))

    group = Group.objects.get(group_id="initech")
    assert group.group_type.key == "company"
    assert group.properties == {"name": "Initech", "employees": 420, "plan": "x"}
    assert set(group.members.all()) == {profile_of("user-4"), profile_of("user-5")}


def test_group_without_group_id_is_rejected(tracker):
    body = segmentio_error(send(tracker, "group", {"userId": "u"}), 400, "no_valid_event")

    assert body["error"]["field"] == "groupId"
    assert not Event.objects.exists()


def test_alias_links_the_previous_id(tracker):
    ok(send(tracker, "track", {"userId": "legacy-6", "event": "Old App Used"}))
    ok(send(tracker, "track", {"userId": "user-6", "event": "New App Used"}))
    assert profile_of("legacy-6") != profile_of("user-6")

    ok(send(tracker, "alias", {"userId": "user-6", "previousId": "legacy-6"}))

    event = Event.objects.get(event_name="$create_alias")
    assert event.distinct_id == "user-6"
    assert profile_of("legacy-6") == profile_of("user-6")
    assert profile_of("user-6").event_count == 3


def test_alias_without_previous_id_is_rejected(tracker):
    body = segmentio_error(send(tracker, "alias", {"userId": "u"}), 400, "no_valid_event")

    assert body["error"]["field"] == "previousId"
    assert not Event.objects.exists()


def everything_batch() -> list[dict[str, Any]]:
    return [
        {"type": "track", "anonymousId": "anon-b", "event": "Signed Up", "messageId": "b1"},
        {"type": "page", "anonymousId": "anon-b", "name": "Home", "messageId": "b2"},
        {"type": "screen", "anonymousId": "anon-b", "name": "Home", "messageId": "b3"},
        {
            "type": "identify",
            "userId": "user-b",
            "anonymousId": "anon-b",
            "traits": {"plan": "team"},
            "messageId": "b4",
        },
        {"type": "group", "userId": "user-b", "groupId": "g-b", "messageId": "b5"},
        {"type": "alias", "userId": "user-b", "previousId": "old-b", "messageId": "b6"},
    ]


@pytest.mark.parametrize("call", ["batch", "import"])
def test_batch_and_import_take_every_message_type(tracker, call):
    body = ok(send(tracker, call, {"batch": everything_batch()}))

    assert body["accepted"] == 6
    assert body["rejected"] == []
    names = dict(Event.objects.values_list("message_id", "event_name"))
    assert names == {
        "b1": "Signed Up",
        "b2": "page_view",
        "b3": "screen_view",
        "b4": "$identify",
        "b5": "$group",
        "b6": "$create_alias",
    }
    profile = profile_of("user-b")
    assert profile_of("anon-b") == profile_of("old-b") == profile
    assert profile.traits["plan"] == "team"
    assert Group.objects.get(group_id="g-b").members.filter(pk=profile.pk).exists()
    assert not Event.objects.filter(processed_at__isnull=True).exists()


def test_gzip_body(tracker):
    ok(send(tracker, "batch", {"batch": everything_batch()}, gzip_body=True))

    assert Event.objects.count() == 6


def test_single_call_ignores_a_type_field_of_another_call(tracker):
    ok(send(tracker, "track", {"type": "identify", "userId": "u", "event": "Clicked"}))

    assert Event.objects.get().event_name == "Clicked"


# --- write key ----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["basic", "header", "body"])
def test_write_key_is_accepted_where_segmentio_clients_put_it(tracker, where):
    payload: dict[str, Any] = {"userId": "u", "event": "Keyed"}
    if where == "body":
        payload["writeKey"] = tracker.write_key
        response = send(tracker, "track", payload, auth="none")
    else:
        response = send(tracker, "track", payload, auth=where)

    ok(response)
    assert Event.objects.get().event_name == "Keyed"


def test_write_key_in_a_batch_body(tracker):
    ok(send(tracker, "batch", {"batch": everything_batch(), "writeKey": tracker.write_key}))

    assert Event.objects.count() == 6


def test_basic_auth_without_the_colon_is_accepted(tracker):
    token = base64.b64encode(tracker.write_key.encode()).decode()

    ok(
        send(
            tracker,
            "track",
            {"userId": "u", "event": "E"},
            auth="none",
            HTTP_AUTHORIZATION=f"Basic {token}",
        )
    )


@pytest.mark.parametrize("call", ["track", "batch"])
@pytest.mark.parametrize("case", ["missing", "unknown", "disabled", "not-basic"])
def test_bad_write_keys_get_401_in_segmentio_shape(tracker, source, call, case):
    payload = {"batch": everything_batch()} if call == "batch" else {"userId": "u", "event": "E"}
    if case == "missing":
        response = send(tracker, call, payload, auth="none")
    elif case == "unknown":
        response = send(tracker, call, {**payload, "writeKey": "wk_nope"}, auth="none")
    elif case == "not-basic":
        response = send(tracker, call, payload, auth="none", HTTP_AUTHORIZATION="Basic %%%")
    else:
        source_services.source_set_enabled(source=source, enabled=False)
        response = send(tracker, call, payload)

    code = "source_disabled" if case == "disabled" else "unauthorized"
    segmentio_error(response, 401, code)
    assert not Event.objects.exists()


def test_rotated_write_key_stops_working(tracker, source):
    old = tracker.write_key
    source_services.source_rotate_write_key(source=source)

    segmentio_error(
        send(tracker, "track", {"userId": "u", "event": "E", "writeKey": old}, auth="none"),
        401,
        "unauthorized",
    )
    assert not Event.objects.exists()


# --- dedupe and identifiers ---------------------------------------------------------------------


def test_retried_messages_are_stored_once(tracker):
    payload = {"batch": everything_batch()}
    ok(send(tracker, "batch", payload))

    body = ok(send(tracker, "batch", payload))

    assert (body["accepted"], body["duplicates"]) == (0, 6)
    assert Event.objects.count() == 6
    assert profile_of("user-b").event_count == 6


def test_duplicates_inside_one_batch_are_stored_once(tracker):
    message = {"type": "track", "userId": "u", "event": "Paid", "messageId": "same"}

    body = ok(send(tracker, "batch", {"batch": [message, message, {**message, "event": "X"}]}))

    assert (body["accepted"], body["duplicates"]) == (1, 2)
    assert list(Event.objects.values_list("event_name", flat=True)) == ["Paid"]


def test_messages_without_message_id_are_all_kept(tracker):
    message = {"type": "track", "userId": "u", "event": "Paid"}

    ok(send(tracker, "batch", {"batch": [message, message]}))

    assert Event.objects.count() == 2


@pytest.mark.parametrize(
    ("ids", "field"),
    [
        ({}, "userId"),
        ({"userId": "", "anonymousId": ""}, "userId"),
        ({"userId": None, "anonymousId": None}, "userId"),
        ({"userId": "undefined"}, "userId"),
        ({"anonymousId": "null"}, "anonymousId"),
        ({"userId": {"id": 1}}, "userId"),
        ({"userId": "x" * 201}, "userId"),
    ],
)
def test_a_message_without_a_usable_id_is_rejected(tracker, ids, field):
    body = ok(
        send(
            tracker,
            "batch",
            {
                "batch": [
                    {"type": "track", "event": "Bad", **ids},
                    {"type": "track", "event": "Good", "userId": "u"},
                ]
            },
        )
    )

    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(0, field)]
    assert list(Event.objects.values_list("event_name", flat=True)) == ["Good"]

    single = segmentio_error(send(tracker, "track", {"event": "Bad", **ids}), 400, "no_valid_event")
    assert single["rejected"][0]["field"] == field
    assert Event.objects.count() == 1


# --- batch-level context and integrations -------------------------------------------------------


def test_batch_context_and_integrations_are_merged_into_each_message(tracker):
    ok(
        send(
            tracker,
            "batch",
            {
                "batch": [
                    {"type": "track", "userId": "u", "event": "Plain", "messageId": "p"},
                    {
                        "type": "track",
                        "userId": "u",
                        "event": "Own",
                        "messageId": "o",
                        "context": {"ip": "10.0.0.2", "app": {"version": "2.0"}},
                        "integrations": {"Mixpanel": False},
                    },
                ],
                "context": {
                    "ip": "10.0.0.1",
                    "app": {"name": "Shop", "version": "1.0"},
                    "library": {"name": "analytics-go"},
                },
                "integrations": {"All": True, "Mixpanel": True},
            },
        )
    )

    plain = Event.objects.get(message_id="p").context
    own = Event.objects.get(message_id="o").context
    assert plain["ip"] == "10.0.0.1"
    assert plain["app"] == {"name": "Shop", "version": "1.0"}
    assert plain["integrations"] == {"All": True, "Mixpanel": True}
    # the message's own context and integrations win, key by key
    assert own["ip"] == "10.0.0.2"
    assert own["app"] == {"name": "Shop", "version": "2.0"}
    assert own["library"] == {"name": "analytics-go"}
    assert own["integrations"] == {"All": True, "Mixpanel": False}


@pytest.mark.parametrize("field", ["context", "integrations"])
def test_batch_level_context_must_be_an_object(tracker, field):
    body = segmentio_error(
        send(tracker, "batch", {"batch": everything_batch(), field: ["x"]}), 400, "invalid"
    )

    assert body["error"]["field"] == field
    assert not Event.objects.exists()


# --- timestamps ---------------------------------------------------------------------------------


def stored_time(message_id: str) -> datetime:
    return Event.objects.get(message_id=message_id).timestamp


def close(a: datetime, b: datetime, seconds: float = 5) -> bool:
    return abs((a - b).total_seconds()) < seconds


def test_client_clock_skew_is_corrected_with_sent_at(tracker):
    now = timezone.now()
    skew = timedelta(hours=3)  # the device's clock is 3 hours fast
    ok(
        send(
            tracker,
            "batch",
            {
                "batch": [
                    {
                        "type": "track",
                        "userId": "u",
                        "event": "Queued",
                        "messageId": "orig",
                        "originalTimestamp": iso(now + skew - timedelta(minutes=10)),
                    },
                    {
                        "type": "track",
                        "userId": "u",
                        "event": "Own sentAt",
                        "messageId": "own",
                        "originalTimestamp": iso(now + skew - timedelta(minutes=20)),
                        "sentAt": iso(now + skew),
                    },
                ],
                "sentAt": iso(now + skew),
            },
        )
    )

    # timestamp = receivedAt - (sentAt - originalTimestamp)
    assert close(stored_time("orig"), now - timedelta(minutes=10))
    assert close(stored_time("own"), now - timedelta(minutes=20))
    assert Event.objects.get(message_id="orig").received_at >= now


def test_timestamp_with_sent_at_is_the_original_timestamp_and_corrected(tracker):
    # What server SDKs (analytics-python, analytics-node) send: timestamp + sentAt.
    now = timezone.now()
    ok(
        send(
            tracker,
            "track",
            {
                "userId": "u",
                "event": "E",
                "messageId": "m",
                "timestamp": iso(now - timedelta(hours=2, minutes=5)),
                "sentAt": iso(now - timedelta(hours=2)),
            },
        )
    )

    assert close(stored_time("m"), now - timedelta(minutes=5))


def test_explicit_timestamp_without_sent_at_is_used_as_is(tracker):
    # A historical import (/v1/import) sets timestamp and nothing else.
    ok(
        send(
            tracker,
            "import",
            {
                "batch": [
                    {
                        "type": "track",
                        "userId": "u",
                        "event": "Old Order",
                        "messageId": "old",
                        "timestamp": "2021-03-04T05:06:07.890Z",
                    },
                    {
                        "type": "identify",
                        "userId": "u",
                        "messageId": "old-id",
                        "timestamp": "2021-03-04T08:06:07+03:00",
                    },
                ]
            },
        )
    )

    assert stored_time("old") == datetime(2021, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
    assert stored_time("old-id") == datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    profile = profile_of("u")
    assert profile.first_seen == datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_replayed_export_keeps_its_corrected_timestamp(tracker):
    # A message exported from Segment carries timestamp (corrected), originalTimestamp and
    # sentAt of long ago: re-correcting against today would move it to now.
    ok(
        send(
            tracker,
            "import",
            {
                "batch": [
                    {
                        "type": "track",
                        "userId": "u",
                        "event": "Replayed",
                        "messageId": "r",
                        "originalTimestamp": "2022-01-01T10:00:00Z",
                        "sentAt": "2022-01-01T10:00:05Z",
                        "timestamp": "2022-01-01T09:00:00Z",
                    }
                ]
            },
        )
    )

    assert stored_time("r") == datetime(2022, 1, 1, 9, 0, tzinfo=UTC)


def test_segmentio_docs_unpadded_dates_are_understood(tracker):
    # The batch example in Segment's HTTP API docs writes "2015-2-02T00:30:08.276Z".
    ok(
        send(
            tracker,
            "batch",
            {
                "batch": [
                    {
                        "type": "track",
                        "userId": "971mj8mk7p",
                        "event": "Song Played",
                        "messageId": "s",
                        "timestamp": "2015-2-02T00:30:12.984Z",
                    }
                ]
            },
        )
    )

    assert stored_time("s") == datetime(2015, 2, 2, 0, 30, 12, 984000, tzinfo=UTC)


def test_no_timestamp_means_the_time_received(tracker):
    before = timezone.now()
    ok(send(tracker, "track", {"userId": "u", "event": "E", "messageId": "n"}))

    assert before <= stored_time("n") <= timezone.now()


def test_a_future_timestamp_is_replaced_with_a_warning(tracker):
    body = ok(
        send(
            tracker,
            "track",
            {"userId": "u", "event": "E", "messageId": "f", "timestamp": "2999-01-01T00:00:00Z"},
        )
    )

    assert body["warnings"][0]["field"] == "timestamp"
    assert stored_time("f").year == timezone.now().year


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"originalTimestamp": "13/01/2024"}, "timestamp"),
        ({"timestamp": "2024-01-01T00:00:00Z", "sentAt": "soon"}, "sentAt"),
        ({"timestamp": ["2024"]}, "timestamp"),
    ],
)
def test_unreadable_timestamps_reject_the_message(tracker, fields, field):
    body = ok(
        send(
            tracker,
            "batch",
            {
                "batch": [
                    {"type": "track", "userId": "u", "event": "Bad", **fields},
                    {"type": "track", "userId": "u", "event": "Good"},
                ]
            },
        )
    )

    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(0, field)]
    assert list(Event.objects.values_list("event_name", flat=True)) == ["Good"]


def test_unreadable_batch_sent_at_rejects_the_batch(tracker):
    body = segmentio_error(
        send(tracker, "batch", {"batch": everything_batch(), "sentAt": "now"}), 400, "invalid"
    )

    assert body["error"]["field"] == "sentAt"
    assert not Event.objects.exists()


# --- limits -------------------------------------------------------------------------------------


def big_message(kb: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": "u",
        "event": "Big",
        "properties": {"blob": "x" * (kb * 1024)},
        **fields,
    }


def test_a_message_over_32_kb_is_rejected_by_index_and_the_rest_stored(tracker):
    body = ok(
        send(
            tracker,
            "batch",
            {
                "batch": [
                    {"type": "track", "userId": "u", "event": "Small", "messageId": "s"},
                    big_message(33, messageId="big"),
                    big_message(31, messageId="fits"),
                ]
            },
        )
    )

    assert [r["index"] for r in body["rejected"]] == [1]
    assert "32768" in body["rejected"][0]["error"]
    assert set(Event.objects.values_list("message_id", flat=True)) == {"s", "fits"}


@pytest.mark.parametrize("gzip_body", [False, True])
def test_a_single_call_over_32_kb_is_413(tracker, gzip_body):
    message = big_message(33)
    message.pop("type")

    segmentio_error(send(tracker, "track", message, gzip_body=gzip_body), 413, "payload_too_large")
    assert not Event.objects.exists()


def test_a_batch_of_only_oversized_messages_is_413_with_each_index(tracker):
    body = segmentio_error(
        send(tracker, "batch", {"batch": [big_message(40), big_message(40)]}),
        413,
        "payload_too_large",
    )

    assert [r["index"] for r in body["rejected"]] == [0, 1]
    assert not Event.objects.exists()


@pytest.mark.parametrize("gzip_body", [False, True])
def test_a_batch_over_500_kb_is_413_and_nothing_is_stored(tracker, gzip_body):
    batch = [big_message(30, messageId=f"m{i}") for i in range(18)]  # ~540 KB, each < 32 KB

    segmentio_error(
        send(tracker, "batch", {"batch": batch}, gzip_body=gzip_body), 413, "payload_too_large"
    )
    assert not Event.objects.exists()


def test_a_batch_just_under_500_kb_is_accepted(tracker):
    batch = [big_message(30, messageId=f"m{i}") for i in range(16)]  # ~480 KB

    assert ok(send(tracker, "batch", {"batch": batch}))["accepted"] == 16


# --- bad input ----------------------------------------------------------------------------------


def test_a_mixed_batch_stores_the_good_and_reports_each_bad_by_index(tracker):
    good = {"type": "track", "userId": "u", "event": "Good"}
    batch = [
        {**good, "messageId": "g0"},
        "not an object",
        {**good, "type": "purchase"},
        {**good, "type": None},
        {"type": "track", "userId": "u"},
        {**good, "event": 42},
        {**good, "properties": "a string"},
        {**good, "context": [1, 2]},
        {**good, "traits": 5, "type": "identify"},
        {**good, "messageId": {"id": 1}},
        {**good, "event": "x" * 300},
        {**good, "messageId": "g1"},
    ]

    body = ok(send(tracker, "batch", {"batch": batch}))

    assert body["accepted"] == 2
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (1, None),
        (2, "type"),
        (3, "type"),
        (4, "event"),
        (5, "event"),
        (6, "properties"),
        (7, "context"),
        (8, "traits"),
        (9, "messageId"),
        (10, "event"),
    ]
    assert all(r["error"] for r in body["rejected"])
    assert set(Event.objects.values_list("message_id", flat=True)) == {"g0", "g1"}


def test_a_batch_with_no_valid_message_is_400_with_each_reason(tracker):
    body = segmentio_error(
        send(tracker, "batch", {"batch": [{"type": "track"}, {"type": "nope", "userId": "u"}]}),
        400,
        "no_valid_event",
    )

    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(0, "userId"), (1, "type")]
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b'{"batch": [', "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"", "empty_body"),
        (b"[]", "invalid_body"),
        (b'"text"', "invalid_body"),
        (b'{"batch": {}}', "invalid"),
        (b'{"batch": []}', "invalid"),
        (b"{}", "invalid"),
    ],
)
def test_unreadable_batch_bodies_are_400_in_segmentio_shape(tracker, raw, code):
    segmentio_error(send(tracker, "batch", None, raw=raw), 400, code)
    assert not Event.objects.exists()


@pytest.mark.parametrize("raw", [b"{not json", b"[1]", b"null"])
def test_unreadable_single_call_bodies_are_400(tracker, raw):
    body = send(tracker, "identify", None, raw=raw).json()

    assert body["success"] is False
    assert body["code"] in ("invalid_json", "invalid_body")
    assert not Event.objects.exists()


def test_bad_gzip_is_400(tracker):
    response = send(tracker, "batch", None, raw=b"not gzip at all", HTTP_CONTENT_ENCODING="gzip")

    segmentio_error(response, 400, "invalid_encoding")
    assert not Event.objects.exists()


def test_get_is_405(tracker):
    response = Client().get("/v1/track")

    assert response.status_code == 405
    assert response.json()["success"] is False


def test_browser_preflight_is_answered(tracker):
    response = Client().options("/v1/batch", HTTP_ORIGIN="https://shop.example")

    assert response.status_code == 204
    assert "Authorization" in response["Access-Control-Allow-Headers"]


# --- never a 500 --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
segmentio_keys = st.sampled_from(
    [
        "type",
        "userId",
        "anonymousId",
        "event",
        "properties",
        "traits",
        "context",
        "integrations",
        "messageId",
        "timestamp",
        "originalTimestamp",
        "sentAt",
        "groupId",
        "previousId",
        "name",
        "category",
    ]
)
segmentio_values = st.one_of(
    json_values,
    st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "u-1"]),
    st.sampled_from(["2024-01-01T00:00:00Z", "2015-2-02T00:30:08Z", "0", "", "null"]),
    st.just({"page": {"url": 5}, "campaign": "x", "userAgent": 7, "groupType": []}),
)
# Mostly valid messages with a few fields replaced, so that some batches get through.
valid_messages = st.builds(
    lambda base, changes: {**base, **changes},
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias"]),
            "userId": st.sampled_from(["u-1", "u-2"]),
            "event": st.just("E"),
            "groupId": st.just("g"),
            "previousId": st.just("p-1"),
        }
    ),
    st.dictionaries(segmentio_keys, segmentio_values, max_size=2),
)
messages = (
    valid_messages | st.dictionaries(segmentio_keys, segmentio_values, max_size=8) | json_values
)


@given(
    batch=st.lists(valid_messages, min_size=1, max_size=5)
    | st.lists(messages, max_size=5)
    | json_values,
    extra=st.dictionaries(st.sampled_from(["context", "integrations", "sentAt"]), segmentio_values),
)
def test_random_batches_never_get_a_500(tracker, batch, extra):
    before = Event.objects.count()
    # json, not orjson: integers beyond 64 bits go over the wire too
    response = send(tracker, "batch", None, raw=json.dumps({"batch": batch, **extra}).encode())

    assert response.status_code in (200, 400, 413), response.content
    event(f"status {response.status_code}")
    body = response.json()
    assert isinstance(body["success"], bool)
    if response.status_code == 200:
        assert Event.objects.count() - before == body["accepted"]
    else:
        assert isinstance(body["code"], str)
        assert isinstance(body["message"], str)
        assert Event.objects.count() == before


@given(message=messages, call=st.sampled_from(["track", "identify", "page", "group", "alias"]))
def test_random_single_calls_never_get_a_500(tracker, message, call):
    response = send(tracker, call, None, raw=json.dumps(message).encode())

    assert response.status_code in (200, 400, 413), response.content
    assert isinstance(response.json()["success"], bool)


def test_raw_json_edge_cases_never_get_a_500(tracker):
    for raw in [
        b'{"batch": [{"type": "track", "userId": "u", "event": "E", "properties": {"n": 1e400}}]}',
        b'{"batch": [' + b"[" * 3000 + b"]" * 3000 + b"]}",
        b'{"batch": [{"type": "track", "userId": "u", "event": "\\ud800"}]}',
        b'{"batch": [{"type": "track", "userId": "u", "event": "E", "properties": {"a": NaN}}]}',
        b'{"batch": [{"type": "track", "userId": "u\\u0000", "event": "E"}]}',
        orjson.dumps({"batch": [{"type": "track", "userId": "u", "event": "E"}] * 3000}),
        gzip.compress(b"{}"),
    ]:
        response = send(tracker, "batch", None, raw=raw)
        assert response.status_code < 500, (raw[:80], response.content)
        assert response.json()["success"] is False or response.status_code == 200


def test_sessions_match_what_native_events_get(tracker):
    """The same visit sent as native events and as Segment calls gives the same session."""
    context = {
        "page": {"url": "https://shop.example/?utm_source=ads&utm_campaign=c1"},
        "referrer": "https://www.google.com/",
        "user_agent": IPHONE,
        "timezone": "America/New_York",
        "locale": "en-US",
    }
    native_response = tracker.post(
        {"event_name": "page_view", "distinct_id": "native", "context": context}
    )
    assert native_response.status_code == 200, native_response.content
    ok(
        send(
            tracker,
            "page",
            {
                "anonymousId": "segmentio",
                "context": {
                    **{k: v for k, v in context.items() if k != "user_agent"},
                    "userAgent": IPHONE,
                },
                "properties": {"referrer": "https://www.google.com/"},
            },
        )
    )

    fields = [
        "landing_page",
        "referring_domain",
        "utm_source",
        "utm_campaign",
        "browser",
        "os",
        "device_type",
        "timezone",
        "locale",
    ]
    native = Session.objects.filter(distinct_id="native").values(*fields).get()
    segmentio = Session.objects.filter(distinct_id="segmentio").values(*fields).get()
    assert native == segmentio
    assert segmentio["utm_source"] == "ads"
    assert segmentio["device_type"] == "mobile"
