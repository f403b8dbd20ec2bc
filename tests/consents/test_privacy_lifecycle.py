"""Privacy requests around the edges: small batches with progress, a failure that ends the
request visibly (and a retry), a lost worker's request resumed, expired exports purged, the
`profile_deleted` hook destinations register, the person-data system check, the admin, and a
request run by a real Celery worker."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import timezone

from apps.consents.models import (
    PrivacyExport,
    PrivacyRequest,
    PrivacyRequestStatus,
    SuppressionKey,
)
from apps.consents.privacy import hooks, services
from apps.consents.privacy.suppression import digest, key_cache_clear
from apps.events.models import Event
from apps.profiles.models import Identity
from apps.segments.person_data import HANDLER as SEGMENTS_HANDLER
from tests.factories import Sender, logged_in, user_make

URL = "/api/v1/privacy-requests"


def _create(kind: str, distinct_id: str, capture: Any) -> PrivacyRequest:
    with capture(execute=True):
        request = services.privacy_request_create(kind=kind, distinct_id=distinct_id)
    request.refresh_from_db()
    return request


def test_an_erase_in_small_batches_reports_each_batch(
    send: Sender, settings: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    settings.CDP_PRIVACY_DELETE_BATCH = 2
    send.batch([send.event("ann-42", n) for n in range(7)])
    reported: list[int] = []
    add = services._Progress.add

    def spy(self: Any, table: str, n: int) -> None:
        if table == "events":
            stored = PrivacyRequest.objects.get(pk=self.request.pk)
            reported.append(stored.counts["events"] if stored.counts else 0)
        add(self, table, n)

    monkeypatch.setattr(services._Progress, "add", spy)
    request = _create("delete", "ann-42", django_capture_on_commit_callbacks)
    assert request.status == PrivacyRequestStatus.DONE
    # Four batches (2, 2, 2, 1), each committed and its progress written before the next.
    assert reported == [0, 2, 4, 6]
    assert request.counts["events"] == 7
    assert request.totals["events"] == 7
    assert not Event.objects.exists()


def test_a_failure_ends_the_request_failed_without_personal_data_and_can_run_again(
    send: Sender, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    send.track("ann-42")

    def broken(*, person: Any, progress: Any) -> dict[str, int]:
        raise RuntimeError(f"disk full while deleting {person.distinct_ids}")

    monkeypatch.setitem(
        hooks._registry.handlers,
        "segments",
        hooks.PersonDataHandler(
            "segments", SEGMENTS_HANDLER.export, broken, SEGMENTS_HANDLER.count
        ),
    )
    request = _create("delete", "ann-42", django_capture_on_commit_callbacks)
    assert request.status == PrivacyRequestStatus.FAILED
    assert "RuntimeError" in request.error
    assert "ann-42" not in request.error
    assert request.distinct_id == "ann-42"  # kept: the request must be able to run again

    monkeypatch.setitem(hooks._registry.handlers, "segments", SEGMENTS_HANDLER)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.privacy_request_retry(request=request)
    request.refresh_from_db()
    assert request.status == PrivacyRequestStatus.DONE
    assert not Event.objects.filter(distinct_id="ann-42").exists()


def test_a_request_whose_worker_was_lost_is_resumed(
    send: Sender, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    send.batch([send.event("ann-42", n) for n in range(3)])
    request = services.privacy_request_create(kind="delete", distinct_id="ann-42")
    # A worker claimed it, then died (no heartbeat since).
    PrivacyRequest.objects.filter(pk=request.pk).update(
        status=PrivacyRequestStatus.RUNNING,
        started_at=timezone.now() - timedelta(hours=1),
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    assert services.privacy_requests_recover() == 1
    request.refresh_from_db()
    assert request.status == PrivacyRequestStatus.DONE
    assert not Event.objects.filter(distinct_id="ann-42").exists()
    assert services.privacy_requests_recover() == 0


def test_expired_exports_are_deleted_and_forget_their_subject(
    send: Sender, django_capture_on_commit_callbacks: Any
) -> None:
    send.track("ann-42")
    request = _create("export", "ann-42", django_capture_on_commit_callbacks)
    assert request.distinct_id == "ann-42"
    assert services.privacy_exports_purge() == 0
    PrivacyExport.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.privacy_exports_purge() == 1
    request.refresh_from_db()
    assert request.distinct_id == ""
    assert not PrivacyExport.objects.exists()


def test_profile_deleted_subscribers_hear_of_a_delete_before_anything_is_erased(
    send: Sender, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    send.identify("ann-42", "device-1")
    heard: list[tuple[tuple[str, ...], int, uuid.UUID]] = []

    def destination(*, person: hooks.Person, request_id: uuid.UUID) -> None:
        events = Event.objects.filter(distinct_id__in=person.distinct_ids).count()
        heard.append((person.distinct_ids, events, request_id))

    monkeypatch.setattr(hooks._registry, "profile_deleted", [destination])
    request = _create("delete", "device-1", django_capture_on_commit_callbacks)
    assert heard == [(("ann-42", "device-1"), 1, request.pk)]
    assert request.counts["forwarded_to"] == 1


def test_the_system_check_names_an_app_with_person_data_and_no_handler(
    monkeypatch: Any,
) -> None:
    assert hooks.check_person_data_registered() == []
    handlers = {k: v for k, v in hooks._registry.handlers.items() if k != "workflows"}
    monkeypatch.setattr(hooks._registry, "handlers", handlers)
    errors = hooks.check_person_data_registered()
    assert [e.id for e in errors] == ["consents.E101"]
    assert "'workflows'" in errors[0].msg
    assert "WorkflowRun" in errors[0].msg


def test_the_suppression_key_is_random_per_install_and_encrypted_at_rest(db: None) -> None:
    first = digest("ann-42")
    stored = SuppressionKey.objects.values_list("key", flat=True).get()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM consents_suppressionkey")
        raw = cursor.fetchone()[0]
    assert raw != stored  # ciphertext in the database
    SuppressionKey.objects.all().delete()
    key_cache_clear()
    assert digest("ann-42") != first  # another install, another key


def test_the_admin_makes_requests_refuses_bad_ones_and_guards_downloads(
    send: Sender, django_capture_on_commit_callbacks: Any
) -> None:
    send.track("ann-42")
    officer = user_make(
        "officer",
        "consents.add_privacyrequest",
        "consents.view_privacyrequest",
        "consents.download_privacy_export",
        staff=True,
    )
    client = logged_in(officer)
    add = "/admin/consents/privacyrequest/add/"
    refused = client.post(add, {"kind": "export", "distinct_id": "undefined"})
    assert refused.status_code == 200
    assert "placeholder" in refused.content.decode()
    assert not PrivacyRequest.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        made = client.post(add, {"kind": "export", "distinct_id": "ann-42", "reference": "T-1"})
    assert made.status_code == 302, made.content.decode()[:2000]
    request = PrivacyRequest.objects.get()
    assert (request.status, request.requested_by_id) == ("done", officer.pk)
    listing = client.get("/admin/consents/privacyrequest/")
    assert listing.status_code == 200
    assert "100%" in listing.content.decode()
    page = client.get(f"/admin/consents/privacyrequest/{request.pk}/change/")
    assert page.status_code == 200
    assert "Download" in page.content.decode()
    download = f"/admin/consents/privacyrequest/{request.pk}/download/"
    assert client.get(download)["Content-Type"] == "application/zip"

    viewer = logged_in(user_make("viewer", "consents.view_privacyrequest", staff=True))
    assert viewer.get(download).status_code == 403
    assert LogEntry.objects.filter(change_message__contains="downloaded").count() == 1


@pytest.mark.postgres
@pytest.mark.worker
def test_a_real_worker_runs_a_suppress_and_delete(tracker: Any, celery_worker: Any) -> None:
    for _ in range(5):
        assert tracker.post({"event_name": "page_view", "distinct_id": "ann-42"}).status_code == 200
    deadline = time.monotonic() + 60
    while not Identity.objects.filter(distinct_id="ann-42").exists():
        assert time.monotonic() < deadline, "the worker did not process the events"
        time.sleep(0.1)
    request = services.privacy_request_create(kind="suppress_and_delete", distinct_id="ann-42")
    while PrivacyRequest.objects.get(pk=request.pk).status in ("pending", "running"):
        assert time.monotonic() < deadline + 60, "the worker did not run the request"
        time.sleep(0.1)
    request.refresh_from_db()
    assert request.status == "done", request.error
    assert request.counts["events"] == 5
    assert not Event.objects.filter(distinct_id="ann-42").exists()
    body = tracker.post({"event_name": "page_view", "distinct_id": "ann-42"}).json()
    assert body["warnings"][0]["code"] == "suppressed"


def _gate(distinct_id: str, source: Any) -> list[str]:
    from apps.consents.privacy.suppression import suppression_gate
    from apps.events.incoming import IncomingEvent

    now = timezone.now()
    event = IncomingEvent(
        source_id=str(source.pk),
        message_id=uuid.uuid4().hex,
        event_name="page_view",
        distinct_id=distinct_id,
        timestamp=now,
        received_at=now,
    )
    outcome = suppression_gate(source=source, events=[event])
    return [d.reason for d in outcome.dropped]


def test_the_gate_reads_no_table_while_nothing_changed_and_sees_every_change(
    source: Any, django_capture_on_commit_callbacks: Any, django_assert_num_queries: Any
) -> None:
    assert _gate("ann-42", source) == []  # the first batch reads the tombstones (none)
    with django_assert_num_queries(0):
        assert _gate("ann-42", source) == []
    _create("suppress", "ann-42", django_capture_on_commit_callbacks)
    assert _gate("ann-42", source) == ["suppressed"]  # the change's token: read again
    with django_assert_num_queries(0):
        assert _gate("ann-42", source) == ["suppressed"]
        assert _gate("bob-7", source) == []
    _create("unsuppress", "ann-42", django_capture_on_commit_callbacks)
    assert _gate("ann-42", source) == []


def test_without_a_cache_the_gate_asks_the_database(
    source: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    from apps.consents.privacy import suppression
    from cdp import shared_version

    _create("suppress", "ann-42", django_capture_on_commit_callbacks)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("cache down")

    monkeypatch.setattr(shared_version.cache, "get", down)
    suppression.SUPPRESSIONS_VERSION.forget()  # read the (unreachable) cache at the next use
    assert _gate("ann-42", source) == ["suppressed"]
    assert _gate("bob-7", source) == []
