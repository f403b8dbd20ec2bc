"""POST /api/track: events and batches, write keys, fields, timestamps, reserved properties,
mixed batches, ephemeral sources, rate limits. Each case checks the answer and what was stored."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client, TestCase
from django.utils import timezone

from apps.events.models import Event, Session
from apps.sources import services as source_services
from tests.clients import TrackingClient
from tests.events.track_helpers import EVENT, error, event, ok, stored_names, warnings_of


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- one event, batches -------------------------------------------------------------------------


def test_one_event_is_stored_with_its_fields(tracker, source):
    response = tracker.post(
        event(
            "order_completed",
            "user-7",
            properties={"total": 42.5, "items": [{"sku": "A-1"}], "coupon": None},
            category="commerce",
            message_id="m-1",
            session_id="s-1",
            context={"locale": "fr-FR", "timezone": "Europe/Paris"},
        ),
        HTTP_USER_AGENT="curl/8.0",
    )

    assert ok(response) == {"accepted": 1, "duplicates": 0, "rejected": [], "warnings": []}
    stored = Event.objects.get()
    assert stored.source_id == source.pk
    assert (stored.event_name, stored.distinct_id) == ("order_completed", "user-7")
    assert stored.properties == {"total": 42.5, "items": [{"sku": "A-1"}], "coupon": None}
    assert (stored.category, stored.message_id, stored.session_key) == ("commerce", "m-1", "s-1")
    assert stored.context["locale"] == "fr-FR"
    assert stored.context["user_agent"] == "curl/8.0"
    assert stored.context["ip"] == "127.0.0.1"


def test_a_batch_is_stored_in_order(tracker):
    batch = [event(f"step_{i}", f"user-{i % 3}") for i in range(25)]

    body = ok(tracker.post({"batch": batch}))

    assert body == {"accepted": 25, "duplicates": 0, "rejected": [], "warnings": []}
    assert stored_names() == [f"step_{i}" for i in range(25)]


def test_a_batch_shares_its_context_and_each_event_overrides_it(tracker):
    body = ok(
        tracker.post(
            {
                "context": {"locale": "de-DE", "app": "shop"},
                "batch": [event("a"), event("b", context={"locale": "en-GB"})],
            }
        )
    )

    assert body["accepted"] == 2
    contexts = {e.event_name: e.context for e in Event.objects.all()}
    assert (contexts["a"]["locale"], contexts["a"]["app"]) == ("de-DE", "shop")
    assert (contexts["b"]["locale"], contexts["b"]["app"]) == ("en-GB", "shop")


def test_a_batch_of_exactly_1000_events_is_accepted(tracker):
    body = ok(tracker.post({"batch": [event(f"e{i}", f"u{i}") for i in range(1000)]}))

    assert body["accepted"] == 1000
    assert Event.objects.count() == 1000


def test_a_batch_of_1001_events_is_413_and_stores_nothing(tracker):
    response = tracker.post({"batch": [event(f"e{i}", f"u{i}") for i in range(1001)]})

    err = error(response, 413, "batch_too_large")
    assert err["field"] == "batch"
    assert "1000" in err["message"]
    assert not Event.objects.exists()


def test_an_empty_batch_is_400(tracker):
    err = error(tracker.post({"batch": []}), 400, "empty_batch")

    assert err["field"] == "batch"
    assert not Event.objects.exists()


@pytest.mark.parametrize("batch", ["events", {"0": EVENT}, None, 3, True])
def test_a_batch_that_is_not_an_array_is_400(tracker, batch):
    err = error(tracker.post({"batch": batch}), 400)

    assert err["field"] == "batch"
    assert "must be an array" in err["message"]
    assert not Event.objects.exists()


@pytest.mark.parametrize("payload", [[EVENT], "signed_up", 42, None, True, []])
def test_a_body_that_is_not_an_object_is_400(tracker, payload):
    err = error(tracker.post(payload), 400, "invalid_body")

    assert "must be a JSON object" in err["message"]
    assert not Event.objects.exists()


def test_get_is_405(tracker):
    response = tracker.client.get("/api/track", {"event_name": "x", "distinct_id": "u"})

    error(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]
    assert not Event.objects.exists()


def test_query_count_does_not_grow_with_the_batch(source, django_assert_max_num_queries):
    # A plain client, outside captureOnCommitCallbacks: the processing queued on commit is not
    # part of the request.
    client = Client(HTTP_X_WRITE_KEY=source.write_key)

    def post(payload: Any) -> Any:
        return client.post("/api/track", payload, content_type="application/json")

    ok(post(EVENT))  # the write key is now cached, as on a busy server
    with django_assert_max_num_queries(4) as one:
        assert ok(post({"batch": [event("a")]}))["accepted"] == 1
    with django_assert_max_num_queries(len(one)):
        body = ok(post({"batch": [event(f"e{i}", f"u{i}") for i in range(200)]}))
    assert body["accepted"] == 200


# --- write key ----------------------------------------------------------------------------------


def test_write_key_as_basic_username(tracker):
    ok(tracker.post(EVENT, auth="basic"))

    assert stored_names() == ["signed_up"]


def test_write_key_as_basic_username_without_the_colon(tracker):
    token = base64.b64encode(tracker.write_key.encode()).decode()

    ok(tracker.post(EVENT, auth="none", HTTP_AUTHORIZATION=f"Basic {token}"))

    assert Event.objects.count() == 1


def test_write_key_as_x_write_key_header(tracker):
    ok(tracker.post(EVENT, auth="header"))

    assert stored_names() == ["signed_up"]


def test_write_key_in_the_body(tracker):
    ok(tracker.post({**EVENT, "writeKey": tracker.write_key}, auth="none"))

    assert stored_names() == ["signed_up"]


def test_write_key_in_the_body_of_a_batch(tracker):
    ok(tracker.post({"writeKey": tracker.write_key, "batch": [EVENT, EVENT]}, auth="none"))

    assert Event.objects.count() == 2


def test_missing_write_key_is_401(tracker):
    err = error(tracker.post(EVENT, auth="none"), 401, "unauthorized")

    assert "write key" in err["message"].lower()
    assert not Event.objects.exists()


@pytest.mark.parametrize("where", ["basic", "header", "body"])
def test_unknown_write_key_is_401(tracker, where):
    tracker.write_key = "wk_not_a_real_key"
    payload = {**EVENT, "writeKey": "wk_not_a_real_key"} if where == "body" else EVENT

    error(tracker.post(payload, auth="none" if where == "body" else where), 401, "unauthorized")

    assert not Event.objects.exists()


def test_disabled_source_is_401_and_enabled_again_works(tracker, source):
    source_services.source_set_enabled(source=source, enabled=False)

    err = error(tracker.post(EVENT), 401, "source_disabled")
    assert source.name in err["message"]
    assert not Event.objects.exists()

    with TestCase.captureOnCommitCallbacks(execute=True):  # as the admin's commit would
        source_services.source_set_enabled(source=source, enabled=True)
    ok(tracker.post(EVENT))
    assert Event.objects.count() == 1


def test_rotated_write_key_stops_working(tracker, source):
    old_key = tracker.write_key
    source_services.source_rotate_write_key(source=source)

    error(tracker.post(EVENT), 401, "unauthorized")
    tracker.write_key = source.write_key
    ok(tracker.post(EVENT))

    assert old_key != source.write_key
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    "header",
    [
        "Basic %%%not-base64%%%",
        "Basic " + base64.b64encode(b"\xff\xfe:").decode(),  # not UTF-8
        "Basic",
        "Basic ",
    ],
)
def test_malformed_basic_header_is_401(tracker, header):
    error(tracker.post(EVENT, auth="none", HTTP_AUTHORIZATION=header), 401)

    assert not Event.objects.exists()


# --- fields -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"distinct_id": "u"}, "event_name"),
        ({"event_name": "x"}, "distinct_id"),
        ({"event_name": "", "distinct_id": "u"}, "event_name"),
        ({"event_name": "   ", "distinct_id": "u"}, "event_name"),
        ({"event_name": "x", "distinct_id": ""}, "distinct_id"),
        ({"event_name": None, "distinct_id": "u"}, "event_name"),
        ({"event_name": "x", "distinct_id": None}, "distinct_id"),
    ],
)
def test_required_fields(tracker, fields, field):
    response = tracker.post(fields)

    err = error(response, 400, "no_valid_event")
    assert err["field"] == field
    rejected = response.json()["rejected"]
    assert [(r["index"], r["field"]) for r in rejected] == [(0, field)]
    assert rejected[0]["error"]
    assert not Event.objects.exists()


def test_length_limits_at_the_limit_are_accepted(tracker):
    body = ok(tracker.post(event("e" * 255, "d" * 200, message_id="m" * 200)))

    assert body["accepted"] == 1
    stored = Event.objects.get()
    assert (len(stored.event_name), len(stored.distinct_id)) == (255, 200)


@pytest.mark.parametrize(
    ("fields", "field", "limit"),
    [
        ({"event_name": "e" * 256}, "event_name", "255"),
        ({"distinct_id": "d" * 201}, "distinct_id", "200"),
        ({"message_id": "m" * 201}, "message_id", "200"),
        ({"category": "c" * 65}, "category", "64"),
        ({"session_id": "s" * 201}, "session_id", "200"),
    ],
)
def test_length_limits_over_the_limit_are_rejected(tracker, fields, field, limit):
    response = tracker.post({**EVENT, **fields})

    assert error(response, 400)["field"] == field
    [rejected] = response.json()["rejected"]
    assert rejected["field"] == field
    assert limit in rejected["error"]
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "placeholder",
    [
        "null",
        "undefined",
        "0",
        "-1",
        "anonymous",
        "[object Object]",
        "NULL",
        "None",
        "  undefined  ",
        "nan",
        "guest",
        "false",
        0,
        -1,
    ],
)
def test_placeholder_distinct_ids_are_rejected(tracker, placeholder):
    response = tracker.post({"batch": [event("a", placeholder), event("b", "real-user")]})

    body = ok(response)
    assert body["accepted"] == 1
    [rejected] = body["rejected"]
    assert (rejected["index"], rejected["field"]) == (0, "distinct_id")
    assert "placeholder" in rejected["error"]
    assert list(Event.objects.values_list("distinct_id", flat=True)) == ["real-user"]


def test_a_numeric_distinct_id_is_kept_as_text(tracker):
    ok(tracker.post(event("a", 12345)))

    assert Event.objects.get().distinct_id == "12345"


def test_values_are_trimmed(tracker):
    ok(tracker.post(event("  signed_up ", " user-1 ", category=" billing ")))

    stored = Event.objects.get()
    assert (stored.event_name, stored.distinct_id, stored.category) == (
        "signed_up",
        "user-1",
        "billing",
    )


WRONG_TYPES = {
    "event_name": [123, 1.5, True, [], ["x"], {}, {"name": "x"}],
    "distinct_id": [1.5, True, False, [], ["u"], {}, {"id": "u"}],
    "category": [1, 1.5, True, [], {}],
    "message_id": [1.5, True, [], {}],
    "session_id": [1.5, False, [], {}],
    "properties": ["x", 1, True, [], [1, 2]],
    "context": ["x", 1, False, [], ["a"]],
    "timestamp": [True, [], {}, ["2026-01-01"]],
    "sent_at": [True, [], {}],
}


@pytest.mark.parametrize(
    ("field", "value"),
    [(field, value) for field, values in WRONG_TYPES.items() for value in values],
)
def test_wrong_types_are_rejected_with_the_field(tracker, field, value):
    response = tracker.post({"batch": [{**EVENT, field: value}, event("good")]})

    body = ok(response)
    assert body["accepted"] == 1
    [rejected] = body["rejected"]
    assert (rejected["index"], rejected["field"]) == (0, field)
    assert rejected["error"].startswith("must be")
    assert stored_names() == ["good"]


def test_category_defaults_to_custom(tracker):
    ok(tracker.post({"batch": [EVENT, {**EVENT, "category": ""}, {**EVENT, "category": None}]}))

    assert set(Event.objects.values_list("category", flat=True)) == {"custom"}


def test_message_id_is_optional_and_generated(tracker):
    ok(tracker.post({"batch": [EVENT, EVENT]}))

    ids = list(Event.objects.values_list("message_id", flat=True))
    assert len(ids) == 2
    assert len(set(ids)) == 2
    assert all(ids)


def test_a_numeric_message_id_is_kept_as_text(tracker):
    ok(tracker.post({**EVENT, "message_id": 123}))

    assert Event.objects.get().message_id == "123"


def test_properties_null_means_empty(tracker):
    ok(tracker.post({**EVENT, "properties": None, "context": None}))

    assert Event.objects.get().properties == {}


def test_event_is_accepted_as_an_alias_of_event_name(tracker):
    ok(tracker.post({"event": "clicked", "distinct_id": "u"}))

    assert stored_names() == ["clicked"]


# --- timestamps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T12:00:00.250Z", datetime(2026, 1, 31, 12, 0, 0, 250000, tzinfo=UTC)),
        ("2026-01-31T14:00:00+02:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T07:30:00-04:30", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T12:00:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),  # naive: UTC
        ("2026-01-31 12:00:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        (1769860800, datetime(2026, 1, 31, 12, tzinfo=UTC)),  # epoch seconds
        (1769860800.5, datetime(2026, 1, 31, 12, 0, 0, 500000, tzinfo=UTC)),
        (1769860800000, datetime(2026, 1, 31, 12, tzinfo=UTC)),  # epoch milliseconds
        (1769860800250, datetime(2026, 1, 31, 12, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_timestamp_formats(tracker, sent, expected):
    body = ok(tracker.post({**EVENT, "timestamp": sent}))

    assert body["warnings"] == []
    assert Event.objects.get().timestamp == expected


@pytest.mark.parametrize("absent", [{}, {"timestamp": None}, {"timestamp": ""}])
def test_absent_timestamp_is_the_time_received(tracker, absent):
    before = timezone.now()
    ok(tracker.post({**EVENT, **absent}))
    after = timezone.now()

    stored = Event.objects.get()
    assert stored.timestamp == stored.received_at
    assert before <= stored.timestamp <= after


def test_sent_at_corrects_client_clock_skew(tracker):
    # The client's clock is 2 hours behind: it says it sent the batch 2 hours ago, and the event
    # happened 10 minutes before that. Segment: timestamp + (received_at - sent_at).
    skew = timedelta(hours=2)
    client_now = timezone.now() - skew
    ok(
        tracker.post(
            {
                **EVENT,
                "timestamp": iso(client_now - timedelta(minutes=10)),
                "sent_at": iso(client_now),
            }
        )
    )

    stored = Event.objects.get()
    happened = stored.received_at - stored.timestamp
    assert timedelta(minutes=10) - timedelta(seconds=2) <= happened <= timedelta(minutes=10)


def test_batch_sent_at_corrects_every_event_and_event_sent_at_wins(tracker):
    client_now = timezone.now() + timedelta(hours=3)  # a clock 3 hours ahead
    ok(
        tracker.post(
            {
                "sent_at": iso(client_now),
                "batch": [
                    event("batch_clock", timestamp=iso(client_now - timedelta(minutes=5))),
                    event(
                        "own_clock",
                        timestamp=iso(client_now - timedelta(minutes=1)),
                        sent_at=iso(client_now + timedelta(minutes=30)),
                    ),
                ],
            }
        )
    )

    ago = {e.event_name: e.received_at - e.timestamp for e in Event.objects.all()}
    slack = timedelta(seconds=2)
    assert timedelta(minutes=5) - slack <= ago["batch_clock"] <= timedelta(minutes=5)
    assert timedelta(minutes=31) - slack <= ago["own_clock"] <= timedelta(minutes=31)


def test_sent_at_without_timestamp_is_the_time_received(tracker):
    ok(tracker.post({**EVENT, "sent_at": "2020-01-01T00:00:00Z"}))

    stored = Event.objects.get()
    assert stored.timestamp == stored.received_at


def test_far_future_timestamp_is_clamped_with_a_warning(tracker):
    future = timezone.now() + timedelta(days=3)

    body = ok(tracker.post({"batch": [event("late", timestamp=iso(future)), event("fine")]}))

    assert body["accepted"] == 2
    assert warnings_of(body) == {(0, "timestamp")}
    assert "future" in body["warnings"][0]["warning"]
    late = Event.objects.get(event_name="late")
    assert late.timestamp == late.received_at


def test_a_little_in_the_future_is_kept(tracker):
    soon = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)

    body = ok(tracker.post({**EVENT, "timestamp": iso(soon)}))

    assert body["warnings"] == []
    assert Event.objects.get().timestamp == soon


def test_timestamp_before_2000_is_clamped_with_a_warning(tracker):
    body = ok(tracker.post({**EVENT, "timestamp": "1970-01-01T00:00:01Z"}))

    assert warnings_of(body) == {(0, "timestamp")}
    stored = Event.objects.get()
    assert stored.timestamp == stored.received_at


@pytest.mark.parametrize(
    "garbage",
    [
        "yesterday",
        "2026-13-45T00:00:00Z",
        "31/01/2026",
        "12:00",
        "   ",
        "2026-01-31T12:00:00Zjunk",
        "9" * 100,
        "NaN",
        "0001-01-01T00:00:00+01:00",
        10**30,
        -(10**30),
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_garbage_timestamps_are_rejected_per_event(tracker, garbage):
    payload = {"batch": [event("bad", timestamp=garbage), event("good")]}

    body = ok(tracker.post(None, raw=json.dumps(payload).encode()))  # orjson can't send 10**30

    assert body["accepted"] == 1
    [rejected] = body["rejected"]
    assert (rejected["index"], rejected["field"]) == (0, "timestamp")
    assert stored_names() == ["good"]


def test_garbage_batch_sent_at_is_400(tracker):
    err = error(tracker.post({"sent_at": "whenever", "batch": [EVENT]}), 400)

    assert err["field"] == "sent_at"
    assert not Event.objects.exists()


def test_skew_correction_that_overflows_falls_back_to_the_time_received(tracker):
    body = ok(
        tracker.post(
            {**EVENT, "timestamp": "9999-12-31T00:00:00Z", "sent_at": "2000-01-01T00:00:00Z"}
        )
    )

    assert warnings_of(body) == {(0, "timestamp")}
    stored = Event.objects.get()
    assert stored.timestamp == stored.received_at


# --- reserved properties ------------------------------------------------------------------------

RESERVED = [
    "page",
    "current_url",
    "referrer",
    "timestamp",
    "user_agent",
    "screen_width",
    "viewport_width",
    "page_title",
    "url",
    "href",
]


def test_reserved_property_names_are_stripped_with_warnings(tracker):
    properties = {name: f"value of {name}" for name in RESERVED}
    properties["plan"] = "pro"

    body = ok(tracker.post({"batch": [event("clean"), event("dirty", properties=properties)]}))

    assert body["accepted"] == 2
    assert body["rejected"] == []
    assert warnings_of(body) == {(1, f"properties.{name}") for name in RESERVED}
    assert all("reserved" in w["warning"] for w in body["warnings"])
    assert Event.objects.get(event_name="dirty").properties == {"plan": "pro"}
    assert Event.objects.get(event_name="clean").properties == {}


def test_reserved_names_are_only_stripped_at_the_top_level(tracker):
    properties = {"product": {"url": "https://x.test/p/1", "page": 2}}

    body = ok(tracker.post({**EVENT, "properties": properties}))

    assert body["warnings"] == []
    assert Event.objects.get().properties == properties


# --- mixed batches ------------------------------------------------------------------------------


def test_a_mixed_batch_stores_the_good_events_and_reports_each_bad_one(tracker):
    batch = [
        event("first"),
        {"event_name": "no_user"},
        event("second", properties={"url": "x"}),
        event("placeholder", "undefined"),
        "not an event",
        event("bad_time", timestamp="soon"),
        event("third"),
        None,
        event("bad_props", properties=[1]),
    ]

    body = ok(tracker.post({"batch": batch}))

    assert body["accepted"] == 3
    assert body["duplicates"] == 0
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (1, "distinct_id"),
        (3, "distinct_id"),
        (4, None),
        (5, "timestamp"),
        (7, None),
        (8, "properties"),
    ]
    assert all(r["error"] for r in body["rejected"])
    assert warnings_of(body) == {(2, "properties.url")}
    assert stored_names() == ["first", "second", "third"]


def test_a_batch_with_no_valid_event_is_400_with_every_rejection(tracker):
    response = tracker.post({"batch": [{"event_name": "x"}, event("y", "null"), 7]})

    err = error(response, 400, "no_valid_event")
    assert err["field"] == "distinct_id"
    body = response.json()
    assert [r["index"] for r in body["rejected"]] == [0, 1, 2]
    assert body["warnings"] == []
    assert not Event.objects.exists()


# --- ephemeral sources --------------------------------------------------------------------------


def test_ephemeral_source_processes_but_stores_no_event(db):
    live = source_services.source_create(name="Live", ephemeral=True)
    tracker = TrackingClient(Client(), live.write_key)

    body = ok(tracker.post({"batch": [event("a", "visitor-1"), event("b", "visitor-1")]}))

    assert body["accepted"] == 2
    assert not Event.objects.exists()
    session = Session.objects.get()
    assert (session.source_id, session.distinct_id) == (live.pk, "visitor-1")
    assert session.event_count == 2


def test_ephemeral_source_still_rejects_bad_events(db):
    live = source_services.source_create(name="Live", ephemeral=True)
    tracker = TrackingClient(Client(), live.write_key)

    error(tracker.post({"event_name": "x", "distinct_id": "undefined"}), 400, "no_valid_event")

    assert not Session.objects.exists()


# --- rate limit ---------------------------------------------------------------------------------


def _limited_tracker(limit: int) -> TrackingClient:
    limited = source_services.source_create(name="Limited", rate_limit_per_second=limit)
    return TrackingClient(Client(), limited.write_key)


def test_a_batch_over_the_rate_limit_is_429_with_retry_after_and_stores_nothing(db):
    tracker = _limited_tracker(3)

    response = tracker.post({"batch": [event(f"e{i}") for i in range(4)]})

    error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1
    assert not Event.objects.exists()


def test_requests_over_the_rate_limit_in_one_second_are_429(db):
    tracker = _limited_tracker(2)
    for _attempt in range(3):  # retry if the one-second window turned between the requests
        second = int(time.time())
        first = tracker.post({"batch": [event("a"), event("b")]})
        refused = tracker.post(event("c"))
        if int(time.time()) == second:
            break
        Event.objects.all().delete()
        time.sleep(1)
    ok(first)

    error(refused, 429, "rate_limited")
    assert refused["Retry-After"]
    assert sorted(stored_names()) == ["a", "b"]


def test_rate_limit_counts_only_valid_events(db):
    tracker = _limited_tracker(2)
    batch = [event("a"), event("b"), {"event_name": "x"}, {"event_name": "y"}]

    body = ok(tracker.post({"batch": batch}))

    assert body["accepted"] == 2
    assert sorted(stored_names()) == ["a", "b"]


def test_zero_means_no_rate_limit(db):
    tracker = _limited_tracker(0)

    body = ok(tracker.post({"batch": [event(f"e{i}", f"u{i}") for i in range(50)]}))

    assert body["accepted"] == 50


def test_a_body_only_key_with_extra_fields_is_still_one_event(tracker):
    payload: dict[str, Any] = {**EVENT, "writeKey": tracker.write_key, "unknown_field": 1}

    ok(tracker.post(payload, auth="none"))

    assert Event.objects.count() == 1
