"""Event sources: write keys, rotation, enabling, bridges and browser origins."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import Client, TestCase

from apps.sources import bridges, services
from apps.sources.models import EventSource
from tests.clients import TrackingClient

EVENT = {"event_name": "page_viewed", "distinct_id": "user-1"}


def test_write_keys_are_long_random_and_unique(db):
    keys = [services.source_create(name=f"Site {i}").write_key for i in range(20)]

    assert len(set(keys)) == 20
    assert all(len(key) >= 32 for key in keys)


def test_two_sources_cannot_share_a_write_key(source):
    other = services.source_create(name="Other")
    other.write_key = source.write_key

    with pytest.raises(IntegrityError), transaction.atomic():
        other.save()


def test_rotated_key_is_refused_at_once_and_the_new_key_works(source, tracker):
    old_key = source.write_key
    assert tracker.post(EVENT).status_code == 200  # the old key is now cached in this process

    with TestCase.captureOnCommitCallbacks(execute=True):
        services.source_rotate_write_key(source=source)

    source.refresh_from_db()
    assert source.write_key != old_key
    assert source.write_key_rotated_at is not None
    response = tracker.post(EVENT)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert TrackingClient(Client(), source.write_key).post(EVENT).status_code == 200


def test_disabled_source_is_refused_and_enabling_it_again_lets_events_in(source, tracker):
    assert tracker.post(EVENT).status_code == 200

    with TestCase.captureOnCommitCallbacks(execute=True):
        services.source_set_enabled(source=source, enabled=False)
    response = tracker.post(EVENT)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "source_disabled"

    with TestCase.captureOnCommitCallbacks(execute=True):
        services.source_set_enabled(source=source, enabled=True)
    assert tracker.post(EVENT).status_code == 200


def test_unknown_and_missing_keys_are_refused(source):
    assert TrackingClient(Client(), "no-such-key").post(EVENT).status_code == 401
    assert TrackingClient(Client(), "").post(EVENT, auth="none").status_code == 401


def test_source_defaults(db):
    source = services.source_create(name="App")

    assert source.bridge == bridges.REST_API.key == "rest"
    assert source.enabled
    assert not source.ephemeral
    assert not source.requires_consent
    assert source.session_timeout_minutes == 30
    assert source.allowed_origins == []


def test_the_rest_bridge_is_registered_and_offered_as_a_choice():
    assert ("rest", "REST API") in bridges.bridge_choices()
    assert bridges.bridge_get("rest") is bridges.REST_API
    assert ("rest", "REST API") in EventSource._meta.get_field("bridge").choices


def test_a_plugged_in_bridge_becomes_a_valid_choice(db, monkeypatch):
    monkeypatch.setattr(bridges, "_REGISTRY", dict(bridges._REGISTRY))
    kafka = bridges.bridge_register(
        bridges.Bridge(key="kafka", name="Kafka", description="Events read from a Kafka topic.")
    )
    source = services.source_create(name="Topic")
    source.bridge = kafka.key

    source.full_clean()  # accepted
    assert ("kafka", "Kafka") in EventSource._meta.get_field("bridge").choices
    source.bridge = "carrier-pigeon"
    with pytest.raises(ValidationError, match="bridge"):
        source.full_clean()


def test_a_bridge_key_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="already registered"):
        bridges.bridge_register(bridges.Bridge(key="rest", name="Again", description=""))


@pytest.mark.parametrize(
    ("allowed", "origin", "expected"),
    [
        ([], "https://anything.example", True),
        (["*"], "https://anything.example", True),
        (["https://shop.example.com"], "https://shop.example.com", True),
        (["https://shop.example.com/"], "https://shop.example.com", True),
        (["https://shop.example.com"], "https://shop.example.com/", True),
        (["https://shop.example.com"], "https://evil.example.com", False),
        (["https://shop.example.com"], "http://shop.example.com", False),
        (["https://shop.example.com"], "", False),
    ],
)
def test_origin_allowed(db, allowed, origin, expected):
    source = services.source_create(name="Shop", allowed_origins=allowed)

    assert source.origin_allowed(origin) is expected


def test_source_create_validates(db):
    with pytest.raises(ValidationError, match="name"):
        services.source_create(name="x" * 201)
    with pytest.raises(ValidationError, match="name"):
        services.source_create(name="")
    assert not EventSource.objects.exists()
