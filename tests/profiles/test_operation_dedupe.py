"""People and group operations carrying a message id apply at most once per (source, message
id): an SDK that retries a timed-out `$add` does not count it twice."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from apps.profiles.models import Group, OperationReceipt, Profile
from apps.profiles.tasks import purge_operation_receipts
from tests.clients import TrackingClient
from tests.factories import profile_of, source_make


def _ok(tracker: TrackingClient, payload: dict[str, Any], path: str) -> dict[str, Any]:
    response = tracker.post(payload, path=path)
    assert response.status_code == 200, response.content
    return response.json()


def _people(tracker: TrackingClient, **payload: Any) -> dict[str, Any]:
    return _ok(tracker, {"distinct_id": "user-1", **payload}, "/api/people")


@pytest.mark.django_db
def test_a_retried_increment_applies_once(tracker):
    first = _people(tracker, increment={"logins": 1}, message_id="m-1")
    retry = _people(tracker, increment={"logins": 1}, message_id="m-1")

    assert profile_of("user-1").traits == {"logins": 1}
    assert first["duplicates"] == 0
    assert retry["duplicates"] == 1
    assert retry["profile_id"] == first["profile_id"] == str(profile_of("user-1").pk)
    assert retry["errors"] == {}


@pytest.mark.django_db
def test_mixpanels_insert_id_is_the_message_id_too(tracker):
    _people(tracker, increment={"logins": 1}, append={"pages": "/a"}, **{"$insert_id": "ins-1"})
    body = _people(
        tracker, increment={"logins": 1}, append={"pages": "/a"}, **{"$insert_id": "ins-1"}
    )

    assert body["duplicates"] == 1
    assert profile_of("user-1").traits == {"logins": 1, "pages": ["/a"]}


@pytest.mark.django_db
def test_different_message_ids_each_apply(tracker):
    _people(tracker, increment={"logins": 1}, message_id="m-1")
    _people(tracker, increment={"logins": 1}, message_id="m-2")
    _people(tracker, increment={"logins": 1}, message_id=3)  # numbers are ids, as on /api/track

    assert profile_of("user-1").traits == {"logins": 3}


@pytest.mark.django_db
def test_operations_without_a_message_id_apply_every_time(tracker):
    for _ in range(3):
        body = _people(tracker, increment={"logins": 1}, union={"tags": ["a"]})
        assert body["duplicates"] == 0
    _people(tracker, increment={"logins": 1}, message_id="  ")  # blank: no id

    assert profile_of("user-1").traits == {"logins": 4, "tags": ["a"]}
    assert OperationReceipt.objects.count() == 0


@pytest.mark.django_db
def test_the_same_message_id_from_another_source_applies(tracker):
    other = TrackingClient(Client(), source_make(name="Backend").write_key)

    _people(tracker, increment={"logins": 1}, message_id="m-1")
    body = _people(other, increment={"logins": 1}, message_id="m-1")

    assert body["duplicates"] == 0
    assert profile_of("user-1").traits == {"logins": 2}
    assert OperationReceipt.objects.count() == 2


@pytest.mark.django_db
def test_the_receipt_holds_no_payload_nor_person(tracker, source):
    _people(tracker, set={"email": "ann@example.com"}, message_id="m-1")

    receipt = OperationReceipt.objects.get()
    assert (receipt.source_id, receipt.message_id) == (source.pk, "m-1")
    fields = {f.name for f in OperationReceipt._meta.concrete_fields}
    assert fields == {"id", "source", "message_id", "applied_at"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"message_id": {"id": 1}}, "message_id"),
        ({"message_id": "x" * 201}, "message_id"),
        ({"$insert_id": ["a"]}, "$insert_id"),
    ],
)
def test_a_bad_message_id_is_a_400_and_applies_nothing(tracker, payload, field):
    for path, body in [
        ("/api/people", {"distinct_id": "user-1", "increment": {"logins": 1}}),
        ("/api/groups", {"distinct_id": "user-1", "group_key": "company", "group_id": "acme"}),
        ("/api/groups/properties", {"group_key": "company", "group_id": "acme", "set": {"a": 1}}),
    ]:
        response = tracker.post({**body, **payload}, path=path)

        assert response.status_code == 400, response.content
        assert response.json()["error"]["field"] == field
    assert Profile.objects.count() == 0
    assert Group.objects.count() == 0
    assert OperationReceipt.objects.count() == 0


@pytest.mark.django_db
def test_a_retried_group_join_does_not_undo_a_later_leave(tracker):
    def group(action: str, message_id: str) -> dict[str, Any]:
        payload = {
            "distinct_id": "user-1",
            "group_key": "company",
            "group_id": "acme",
            "action": action,
            "message_id": message_id,
        }
        return _ok(tracker, payload, "/api/groups")

    group("add", "g-1")
    group("remove", "g-2")
    retry = group("add", "g-1")  # the first call's answer was lost; the SDK sends it again

    assert retry["duplicates"] == 1
    assert retry["profile_id"] == str(profile_of("user-1").pk)
    assert not profile_of("user-1").memberships.exists()


@pytest.mark.django_db
def test_a_retried_group_property_set_does_not_undo_a_later_one(tracker):
    def update(tier: str, message_id: str) -> dict[str, Any]:
        payload = {
            "group_key": "company",
            "group_id": "acme",
            "set": {"tier": tier},
            "message_id": message_id,
        }
        return _ok(tracker, payload, "/api/groups/properties")

    update("gold", "p-1")
    update("silver", "p-2")
    retry = update("gold", "p-1")

    assert retry["duplicates"] == 1
    assert retry["properties"] == {"tier": "silver"}
    assert Group.objects.get(group_id="acme").properties == {"tier": "silver"}


@pytest.mark.django_db
def test_old_receipts_are_purged_and_a_retry_after_the_window_applies_again(tracker, settings):
    settings.CDP_OPERATION_RECEIPT_RETENTION_DAYS = 7
    _people(tracker, increment={"logins": 1}, message_id="old")
    _people(tracker, increment={"logins": 1}, message_id="recent")
    OperationReceipt.objects.filter(message_id="old").update(
        applied_at=timezone.now() - timedelta(days=8)
    )
    OperationReceipt.objects.filter(message_id="recent").update(
        applied_at=timezone.now() - timedelta(days=6)
    )

    assert purge_operation_receipts.delay().get() == 1

    assert list(OperationReceipt.objects.values_list("message_id", flat=True)) == ["recent"]
    assert _people(tracker, increment={"logins": 1}, message_id="recent")["duplicates"] == 1
    assert _people(tracker, increment={"logins": 1}, message_id="old")["duplicates"] == 0
    assert profile_of("user-1").traits == {"logins": 3}


def test_the_purge_runs_on_the_beat_schedule(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "apps.profiles.tasks.purge_operation_receipts" in tasks


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/api/people", "/api/groups/properties"])
def test_concurrent_duplicates_apply_once(source, path):
    """Several requests with the same message id at the same moment, each on its own thread
    and PostgreSQL connection: one applies, the others are answered as duplicates."""
    if path == "/api/people":
        payload = {"distinct_id": "user-1", "increment": {"logins": 1}, "message_id": "m-1"}
    else:
        payload = {
            "group_key": "company",
            "group_id": "acme",
            "set": {"tier": "gold"},
            "message_id": "m-1",
        }
    # The profile and group exist first, so that the requests only race on the receipt.
    warmup = TrackingClient(Client(), source.write_key)
    if path == "/api/people":
        _people(warmup, set={"plan": "pro"})
    else:
        _ok(warmup, {**payload, "set": {"plan": "pro"}, "message_id": None}, path)
    threads_n = 4
    barrier = threading.Barrier(threads_n)
    answers: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            client = TrackingClient(Client(), source.write_key)
            barrier.wait(timeout=30)
            answers.append(_ok(client, payload, path))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a request thread hung"
    assert not errors, errors

    assert sorted(a["duplicates"] for a in answers) == [0, 1, 1, 1]
    assert OperationReceipt.objects.filter(message_id="m-1").count() == 1
    if path == "/api/people":
        assert profile_of("user-1").traits == {"plan": "pro", "logins": 1}
    else:
        assert Group.objects.get(group_id="acme").properties == {"plan": "pro", "tier": "gold"}
