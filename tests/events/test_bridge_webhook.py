"""The webhook bridge: any JSON posted to /api/bridges/webhook/<source id> becomes events by
the source's mapping, with /api/track's answers, limits and dedupe, and HMAC signatures."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Any

import orjson
import pytest
from django.db import connection
from django.test import Client

from apps.events.models import Event
from apps.sources import services as source_services
from apps.sources.models import EventSource
from tests.events.track_helpers import error, ok

STRIPE_LIKE = {
    "id": "evt_1",
    "type": "invoice.paid",
    "created": 1767225600,
    "data": {"object": {"customer": "cus_42", "amount_paid": 1900, "currency": "eur"}},
}
MAPPING = {
    "event_name": "$.type",
    "distinct_id": "$.data.object.customer",
    "message_id": "$.id",
    "timestamp": "$.created",
    "properties": {
        "amount": "$.data.object.amount_paid",
        "currency": "$.data.object.currency",
        "label": "paid {{ $.data.object.amount_paid }} {{ $.data.object.currency }}",
        "kind": "invoice",
    },
}
SECRET = "whsec_test_1234567890"


@pytest.fixture
def hook(db: None) -> EventSource:
    source = source_services.source_create(name="Billing webhooks")
    return source_services.source_set_bridge(source=source, bridge="webhook", config=MAPPING)


def post(source: EventSource | str, payload: Any = None, *, raw: bytes | None = None, **h: Any):
    source_id = source.pk if isinstance(source, EventSource) else source
    body = raw if raw is not None else orjson.dumps(payload)
    return Client().generic(
        "POST",
        f"/api/bridges/webhook/{source_id}",
        body,
        content_type="application/json",
        **h,
    )


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_a_third_party_body_becomes_an_event_by_the_mapping(hook: EventSource) -> None:
    body = ok(post(hook, STRIPE_LIKE))
    assert body["accepted"] == 1
    event = Event.objects.get()
    assert (event.event_name, event.distinct_id, event.message_id) == (
        "invoice.paid",
        "cus_42",
        "evt_1",
    )
    assert event.source_id == hook.pk
    assert event.timestamp.isoformat().startswith("2026-01-01")
    assert event.properties == {
        "amount": 1900,
        "currency": "eur",
        "label": "paid 1900 eur",
        "kind": "invoice",
    }


def test_a_redelivered_webhook_is_a_duplicate_stored_once(hook: EventSource) -> None:
    ok(post(hook, STRIPE_LIKE))
    again = ok(post(hook, STRIPE_LIKE))
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    assert Event.objects.count() == 1


def test_without_a_mapping_the_body_is_taken_as_a_native_event(db: None) -> None:
    source = source_services.source_set_bridge(
        source=source_services.source_create(name="Raw"), bridge="webhook"
    )
    ok(
        post(
            source,
            {
                "batch": [
                    {"event_name": "a", "distinct_id": "u1"},
                    {"event_name": "b", "distinct_id": "u1"},
                ]
            },
        )
    )
    assert sorted(Event.objects.values_list("event_name", flat=True)) == ["a", "b"]


def test_a_signed_source_takes_a_valid_signature(hook: EventSource) -> None:
    source_services.source_set_bridge(source=hook, bridge="webhook", config=MAPPING, secret=SECRET)
    raw = orjson.dumps(STRIPE_LIKE)
    ok(post(hook, raw=raw, HTTP_X_SIGNATURE=sign(raw)))
    assert Event.objects.count() == 1


def test_a_custom_signature_header_and_no_prefix(hook: EventSource) -> None:
    config = {**MAPPING, "signature": {"header": "X-Hub-Signature", "prefix": ""}}
    source_services.source_set_bridge(source=hook, bridge="webhook", config=config, secret=SECRET)
    raw = orjson.dumps(STRIPE_LIKE)
    ok(post(hook, raw=raw, HTTP_X_HUB_SIGNATURE=sign(raw).removeprefix("sha256=")))


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "No signature"),
        ({"HTTP_X_SIGNATURE": "sha256=" + "0" * 64}, "does not match"),
        ({"HTTP_X_SIGNATURE": sign(orjson.dumps(STRIPE_LIKE), "another-secret")}, "not match"),
    ],
)
def test_a_missing_or_wrong_signature_is_401_and_nothing_stored(
    hook: EventSource, headers: dict[str, str], why: str
) -> None:
    source_services.source_set_bridge(source=hook, bridge="webhook", config=MAPPING, secret=SECRET)
    err = error(post(hook, STRIPE_LIKE, **headers), 401, "invalid_signature")
    assert why in err["message"]
    assert err["field"] == "X-Signature"
    assert not Event.objects.exists()


def test_the_secret_is_stored_encrypted(hook: EventSource) -> None:
    source_services.source_set_bridge(source=hook, bridge="webhook", config=MAPPING, secret=SECRET)
    with connection.cursor() as cursor:
        cursor.execute("SELECT bridge_secret FROM sources_eventsource WHERE name = %s", [hook.name])
        (stored,) = cursor.fetchone()
    assert SECRET not in stored
    assert EventSource.objects.get(pk=hook.pk).bridge_secret == SECRET


def test_a_body_that_is_not_json_is_400_and_nothing_stored(hook: EventSource) -> None:
    error(post(hook, raw=b"{not json"), 400, "invalid_json")
    assert not Event.objects.exists()


def test_a_mapping_that_finds_no_distinct_id_is_400_naming_the_field(hook: EventSource) -> None:
    payload = {**STRIPE_LIKE, "data": {"object": {"amount_paid": 5}}}
    response = post(hook, payload)
    err = error(response, 400, "no_valid_event")
    assert err["field"] == "distinct_id"
    assert response.json()["rejected"][0]["field"] == "distinct_id"
    assert not Event.objects.exists()


def test_a_body_that_is_not_an_object_without_a_mapping_is_400(db: None) -> None:
    source = source_services.source_set_bridge(
        source=source_services.source_create(name="Raw"), bridge="webhook"
    )
    error(post(source, [1, 2, 3]), 400, "invalid_body")
    assert not Event.objects.exists()


def test_unknown_sources_and_sources_of_other_bridges_are_404(db: None) -> None:
    rest = source_services.source_create(name="Website")
    error(post(str(uuid.uuid4()), STRIPE_LIKE), 404, "not_found")
    error(post(rest, STRIPE_LIKE), 404, "not_found")
    assert Client().post("/api/bridges/webhook/not-a-uuid").status_code == 404
    assert not Event.objects.exists()


def test_a_disabled_source_is_401(hook: EventSource) -> None:
    source_services.source_set_enabled(source=hook, enabled=False)
    error(post(hook, STRIPE_LIKE), 401, "source_disabled")
    assert not Event.objects.exists()


def test_only_post(hook: EventSource) -> None:
    response = Client().get(f"/api/bridges/webhook/{hook.pk}")
    error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


def test_limits_are_those_of_track(hook: EventSource, settings: Any) -> None:
    settings.CDP_MAX_REQUEST_BYTES = 200
    error(post(hook, {**STRIPE_LIKE, "pad": "x" * 300}), 413, "payload_too_large")
    settings.CDP_MAX_REQUEST_BYTES = 1024 * 1024
    hook.rate_limit_per_second = 1
    hook.save()
    ok(post(hook, STRIPE_LIKE))
    response = post(hook, {**STRIPE_LIKE, "id": "evt_2"})
    error(response, 429, "rate_limited")
    assert response["Retry-After"] == "1"
    assert Event.objects.count() == 1
