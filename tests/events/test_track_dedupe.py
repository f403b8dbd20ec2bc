"""POST /api/track dedupe: one (source, message_id) is stored once, whatever the retries, the
duplicates inside a batch and the requests racing each other (a unique constraint, no cache)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client

from apps.events.models import Event
from apps.sources import services as source_services
from tests.clients import TrackingClient
from tests.events.track_helpers import event, ok, stored_names


def test_a_retried_event_is_stored_once(tracker):
    payload = event("paid", message_id="msg-1")

    first = ok(tracker.post(payload))
    second = ok(tracker.post(payload))

    assert (first["accepted"], first["duplicates"]) == (1, 0)
    assert (second["accepted"], second["duplicates"]) == (0, 1)
    assert Event.objects.count() == 1


def test_a_retry_does_not_overwrite_the_stored_event(tracker):
    ok(tracker.post(event("paid", properties={"amount": 10}, message_id="msg-1")))

    ok(tracker.post(event("refunded", properties={"amount": 99}, message_id="msg-1")))

    stored = Event.objects.get()
    assert (stored.event_name, stored.properties) == ("paid", {"amount": 10})


def test_the_cache_being_emptied_does_not_break_dedupe(tracker):
    ok(tracker.post(event(message_id="msg-1")))
    cache.clear()

    body = ok(tracker.post(event(message_id="msg-1")))

    assert body["duplicates"] == 1
    assert Event.objects.count() == 1


def test_duplicates_inside_one_batch_are_stored_once(tracker):
    batch = [
        event("first", message_id="a"),
        event("second", message_id="a"),
        event("third", message_id="b"),
        event("fourth", message_id="a"),
    ]

    body = ok(tracker.post({"batch": batch}))

    assert (body["accepted"], body["duplicates"]) == (2, 2)
    assert stored_names() == ["first", "third"]


def test_a_partly_stored_batch_retried_stores_only_the_new_events(tracker):
    ok(tracker.post({"batch": [event("a", message_id="1"), event("b", message_id="2")]}))

    body = ok(tracker.post({"batch": [event("b", message_id="2"), event("c", message_id="3")]}))

    assert (body["accepted"], body["duplicates"]) == (1, 1)
    assert stored_names() == ["a", "b", "c"]


def test_message_ids_are_compared_after_trimming_and_as_text(tracker):
    ok(tracker.post(event("a", message_id=123)))

    body = ok(
        tracker.post({"batch": [event("b", message_id="123"), event("c", message_id=" 123 ")]})
    )

    assert (body["accepted"], body["duplicates"]) == (0, 2)
    assert stored_names() == ["a"]


def test_message_ids_are_case_sensitive(tracker):
    body = ok(tracker.post({"batch": [event("a", message_id="X"), event("b", message_id="x")]}))

    assert body["accepted"] == 2
    assert Event.objects.count() == 2


def test_events_without_message_id_are_never_duplicates(tracker):
    body = ok(tracker.post({"batch": [event(), event(), event()]}))
    again = ok(tracker.post({"batch": [event()]}))

    assert (body["accepted"], again["accepted"]) == (3, 1)
    assert Event.objects.count() == 4


def test_the_same_message_id_on_two_sources_is_stored_twice(tracker, source):
    other = source_services.source_create(name="Mobile app")
    other_tracker = TrackingClient(Client(), other.write_key)

    ok(tracker.post(event("web", message_id="shared")))
    body = ok(other_tracker.post(event("app", message_id="shared")))

    assert (body["accepted"], body["duplicates"]) == (1, 0)
    assert dict(Event.objects.values_list("source_id", "event_name")) == {
        source.pk: "web",
        other.pk: "app",
    }


def test_rejected_events_do_not_count_as_duplicates(tracker):
    batch = [event("bad", "undefined", message_id="m"), event("good", message_id="m")]

    body = ok(tracker.post({"batch": batch}))

    assert (body["accepted"], body["duplicates"]) == (1, 0)
    assert [r["index"] for r in body["rejected"]] == [0]
    assert stored_names() == ["good"]


def _post_concurrently(write_key: str, payloads: list[Any]) -> list[Any]:
    barrier = threading.Barrier(len(payloads))
    responses: list[Any] = [None] * len(payloads)
    failures: list[BaseException] = []

    def send(index: int) -> None:
        try:
            tracker = TrackingClient(Client(), write_key)
            barrier.wait(timeout=10)
            responses[index] = tracker.post(payloads[index])
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(payloads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    return responses


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_requests_with_the_same_message_id_store_one_row(source):
    responses = _post_concurrently(
        source.write_key, [event("paid", f"user-{i}", message_id="race-1") for i in range(8)]
    )

    bodies = [ok(r) for r in responses]
    assert sum(b["accepted"] for b in bodies) == 1
    assert sum(b["duplicates"] for b in bodies) == 7
    assert Event.objects.filter(message_id="race-1").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_overlapping_batches_store_each_message_once(source):
    # Each request shares half its messages with the next: every message is stored once and
    # every request hears the truth about its own events.
    payloads = [
        {"batch": [event(f"e{j}", f"u{j}", message_id=f"m{j}") for j in range(i * 5, i * 5 + 10)]}
        for i in range(6)
    ]

    bodies = [ok(r) for r in _post_concurrently(source.write_key, payloads)]

    assert sum(b["accepted"] for b in bodies) == 35
    assert sum(b["accepted"] + b["duplicates"] for b in bodies) == 60
    assert Event.objects.count() == 35
    assert set(Event.objects.values_list("message_id", flat=True)) == {f"m{j}" for j in range(35)}
