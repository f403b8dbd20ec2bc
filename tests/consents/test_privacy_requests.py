"""Privacy requests end to end: an export holds all of a person's data (merged profiles
included) and nothing of anyone else; a delete leaves no row anywhere that names them; a
suppressed id's next event is dropped at ingest; bad input is refused with nothing stored."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry

from apps.consents.models import PrivacyExport, PrivacyRequest, Suppression
from apps.events.models import Event, Session
from apps.profiles.models import Identity, Profile
from apps.segments.models import SegmentMembership
from apps.workflows.models import NodeTrace, WorkflowRun
from tests.consents.privacy_people import (
    BYSTANDER,
    EMAIL,
    PERSON_IDS,
    person_history,
    rows_mentioning,
    zip_files,
)
from tests.factories import Sender, profile_of
from tests.users import client_with_perms

URL = "/api/v1/privacy-requests"


def _post_batch(send: Sender, events: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch whose events may be dropped (Sender.batch expects all of them accepted)."""
    response = send.tracker.post({"batch": events})
    assert response.status_code == 200, response.content
    return response.json()


def _request(api_client: Any, capture: Any, **body: Any) -> Any:
    with capture(execute=True):
        return api_client.post(URL, body, format="json")


def _done(api_client: Any, capture: Any, **body: Any) -> dict[str, Any]:
    response = _request(api_client, capture, **body)
    assert response.status_code == 202, response.content
    detail = api_client.get(f"{URL}/{response.json()['id']}").json()
    assert detail["status"] == "done", detail
    return detail


def test_export_holds_all_of_a_merged_person_and_nothing_of_anyone_else(
    send: Sender, api_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    history = person_history(send)
    # device-1 became the known user's profile; device-2's was merged into it.
    assert len(history.profile_ids) == 2

    detail = _done(
        api_client, django_capture_on_commit_callbacks, kind="export", distinct_id="device-2"
    )
    assert detail["progress"] == 1.0
    download = api_client.get(f"{URL}/{detail['id']}/download")
    assert download.status_code == 200
    assert download["Content-Type"] == "application/zip"
    files = zip_files(download.content)

    assert sorted(str(p["id"]) for p in files["profiles"]) == history.profile_ids
    assert {p["private_traits"].get("email") for p in files["profiles"]} >= {EMAIL}
    assert sorted(i["distinct_id"] for i in files["identities"]) == sorted(PERSON_IDS)
    stored = Event.objects.filter(distinct_id__in=PERSON_IDS)
    assert sorted(e["message_id"] for e in files["events"]) == sorted(
        stored.values_list("message_id", flat=True)
    )
    assert len(files["events"]) == history.events
    assert sorted(s["id"] for s in files["sessions"]) == sorted(
        str(pk)
        for pk in Session.objects.filter(distinct_id__in=PERSON_IDS).values_list("pk", flat=True)
    )
    assert len(files["merges"]) == 1
    assert [g["group_id"] for g in files["group_memberships"]] == ["acme"]
    assert [m["segment"] for m in files["segment_memberships"]] == ["pros"]
    runs = files["workflow_runs"]
    assert [r["distinct_id"] for r in runs] == ["ann-42"]
    assert {t["run_id"] for t in files["workflow_traces"]} == {runs[0]["id"]}
    manifest = files["manifest.json"][0]
    assert manifest["files"] == {
        f"{name}.ndjson": len(rows) for name, rows in files.items() if name != "manifest.json"
    }
    # Nothing of the bystander, though he tried to log in on the person's device.
    assert BYSTANDER.encode() not in download.content
    for rows in files.values():
        assert BYSTANDER not in str(rows)
    assert detail["counts"]["events"] == history.events


def test_export_download_needs_its_own_permission(
    send: Sender, api_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    send.track("ann-42")
    detail = _done(
        api_client, django_capture_on_commit_callbacks, kind="export", distinct_id="ann-42"
    )
    viewer = client_with_perms("consents.view_privacyrequest")
    assert viewer.get(f"{URL}/{detail['id']}").status_code == 200
    refused = viewer.get(f"{URL}/{detail['id']}/download")
    assert refused.status_code == 403
    assert "consents.download_privacy_export" in refused.json()["error"]["message"]
    allowed = client_with_perms(
        "consents.view_privacyrequest", "consents.download_privacy_export"
    ).get(f"{URL}/{detail['id']}/download")
    assert allowed.status_code == 200
    assert LogEntry.objects.filter(change_message__contains="Export downloaded").count() == 1


def test_delete_leaves_no_row_naming_the_person_in_any_table(
    send: Sender, api_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    history = person_history(send)
    bob = profile_of(BYSTANDER)
    bob_events = Event.objects.filter(distinct_id=BYSTANDER).count()
    needles = [*PERSON_IDS, EMAIL, *history.profile_ids]
    before = rows_mentioning(needles)
    # The history reaches every table that can name a person.
    for table in (
        "events_event",
        "events_session",
        "profiles_profile",
        "profiles_identity",
        "profiles_profilemerge",
        "profiles_groupmembership",
        "segments_segmentmembership",
        "workflows_workflowrun",
        "workflows_nodetrace",
        "profiles_mergeconflict",
    ):
        assert before.get(table), (table, before)
    export = _done(
        api_client, django_capture_on_commit_callbacks, kind="export", distinct_id="ann-42"
    )

    detail = _done(
        api_client, django_capture_on_commit_callbacks, kind="delete", distinct_id="crm-981"
    )

    assert rows_mentioning(needles) == {}
    assert detail["distinct_id"] == ""  # the audit record forgot its subject
    assert detail["counts"]["events"] == history.events + 1  # + Bob's refused login
    assert detail["counts"]["profiles"] == 2
    assert detail["counts"]["identities"] == len(PERSON_IDS)
    assert detail["counts"]["workflow_runs"] == 1
    assert detail["progress"] == 1.0
    assert not PrivacyExport.objects.filter(request_id=export["id"]).exists()
    assert api_client.get(f"{URL}/{export['id']}/download").status_code == 404
    # The bystander keeps his profile and his own events (but the one naming the person).
    assert Profile.objects.filter(pk=bob.pk).exists()
    assert Event.objects.filter(distinct_id=BYSTANDER).count() == bob_events - 1
    # Nothing left for the apps above either.
    assert (
        not SegmentMembership.objects.exists()
        or not SegmentMembership.objects.filter(profile_id__in=history.profile_ids).exists()
    )
    assert not WorkflowRun.objects.filter(distinct_id__in=PERSON_IDS).exists()
    assert NodeTrace.objects.filter(run__distinct_id=BYSTANDER).count() == NodeTrace.objects.count()


def test_a_plain_delete_does_not_stop_later_events(
    send: Sender, api_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    send.track("ann-42")
    _done(api_client, django_capture_on_commit_callbacks, kind="delete", distinct_id="ann-42")
    assert not Identity.objects.filter(distinct_id="ann-42").exists()
    send.track("ann-42", 1)  # a new visit: a new, empty profile (suppress to prevent it)
    assert Event.objects.filter(distinct_id="ann-42").count() == 1


def test_a_suppressed_persons_next_events_are_dropped_from_any_of_their_ids(
    send: Sender, tracker: Any, api_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    person_history(send)
    stored = Event.objects.count()
    detail = _done(
        api_client, django_capture_on_commit_callbacks, kind="suppress", distinct_id="ann-42"
    )
    assert detail["counts"] == {"suppressed_ids": len(PERSON_IDS)}
    # Tombstones are keyed digests: neither the ids nor their bare hashes are stored.
    assert Suppression.objects.count() == len(PERSON_IDS)
    assert rows_mentioning(list(PERSON_IDS)) != {}  # suppress alone keeps the history
    bare = {hashlib.sha256(i.encode()).hexdigest() for i in PERSON_IDS}
    assert not Suppression.objects.filter(digest__in=bare).exists()

    body = _post_batch(
        send,
        [
            send.event("device-2", 30),
            send.event("someone-else", 30),
            send.event("crm-981", 31, "purchase"),
        ],
    )
    assert body["accepted"] == 1
    assert [(w["index"], w["code"]) for w in body["warnings"]] == [
        (0, "suppressed"),
        (2, "suppressed"),
    ]
    # A new device linked to a suppressed id is dropped too.
    linked = send.identify("new-device", "ann-42", minutes=32)
    assert linked["accepted"] == 0
    assert linked["warnings"][0]["code"] == "suppressed"
    assert Event.objects.count() == stored + 1
    assert not Identity.objects.filter(distinct_id="new-device").exists()

    _done(api_client, django_capture_on_commit_callbacks, kind="unsuppress", distinct_id="device-1")
    assert not Suppression.objects.exists()
    assert send.track("ann-42", 40)["accepted"] == 1


def test_suppress_and_delete_erases_and_keeps_the_person_out(
    send: Sender, api_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    history = person_history(send)
    detail = _done(
        api_client,
        django_capture_on_commit_callbacks,
        kind="suppress_and_delete",
        distinct_id="device-1",
    )
    assert detail["counts"]["suppressed_ids"] == len(PERSON_IDS)
    assert detail["counts"]["profiles"] == 2
    assert rows_mentioning([*PERSON_IDS, EMAIL, *history.profile_ids]) == {}
    body = _post_batch(send, [send.event("ann-42", 50)])
    assert body["accepted"] == 0
    assert body["warnings"][0]["code"] == "suppressed"
    assert not Identity.objects.filter(distinct_id__in=PERSON_IDS).exists()


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"kind": "erase", "distinct_id": "ann-42"}, 400, "invalid_kind", "kind"),
        ({"distinct_id": "ann-42"}, 400, "invalid_kind", "kind"),
        ({"kind": "delete"}, 400, "invalid", "distinct_id"),
        ({"kind": "delete", "distinct_id": "undefined"}, 400, "invalid", "distinct_id"),
        ({"kind": "delete", "distinct_id": "x" * 201}, 400, "invalid", "distinct_id"),
        ({"kind": "delete", "distinct_id": {"id": 1}}, 400, "invalid", "distinct_id"),
        (
            {"kind": "export", "distinct_id": "ann-42", "reference": "r" * 201},
            400,
            "invalid",
            "reference",
        ),
        ({"kind": "export", "distinct_id": "nobody-here"}, 404, "unknown_person", "distinct_id"),
        ({"kind": "delete", "distinct_id": "nobody-here"}, 404, "unknown_person", "distinct_id"),
        ({"kind": "unsuppress", "distinct_id": "ann-42"}, 400, "not_suppressed", "distinct_id"),
    ],
)
def test_bad_requests_are_refused_and_store_nothing(
    send: Sender,
    api_client: Any,
    django_capture_on_commit_callbacks: Any,
    body: dict[str, Any],
    status: int,
    code: str,
    field: str,
) -> None:
    send.track("ann-42")
    events, identities = Event.objects.count(), Identity.objects.count()
    response = _request(api_client, django_capture_on_commit_callbacks, **body)
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["field"] == field
    assert not PrivacyRequest.objects.exists()
    assert not Suppression.objects.exists()
    assert (Event.objects.count(), Identity.objects.count()) == (events, identities)


def test_a_second_open_request_of_the_same_kind_is_refused(send: Sender, api_client: Any) -> None:
    send.track("ann-42")
    # Without the commit callbacks, the first request stays pending.
    first = api_client.post(URL, {"kind": "delete", "distinct_id": "ann-42"}, format="json")
    assert first.status_code == 202
    assert first.json()["status"] == "pending"
    second = api_client.post(URL, {"kind": "delete", "distinct_id": "ann-42"}, format="json")
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "request_open"
    assert PrivacyRequest.objects.count() == 1
    assert Event.objects.filter(distinct_id="ann-42").count() == 1


def test_a_suppression_of_an_id_never_seen_is_allowed(
    send: Sender, api_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _done(api_client, django_capture_on_commit_callbacks, kind="suppress", distinct_id="future-1")
    body = _post_batch(send, [send.event("future-1", 1)])
    assert body["accepted"] == 0
    assert not Event.objects.exists()
    # People and group operations, which apply at once, write nothing for it either.
    people = send.people("future-1", set={"email": "f@example.com"})
    assert people["dropped"] is True
    assert people["warnings"][0]["code"] == "suppressed"
    group = send.group("future-1", "company", "acme")
    assert group["warnings"][0]["code"] == "suppressed"
    assert not Identity.objects.filter(distinct_id="future-1").exists()
    assert not Profile.objects.exists()
    assert send.people("someone-else", set={"plan": "pro"})["profile_id"] is not None


def test_the_list_shows_requests_newest_first(
    send: Sender, api_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    send.track("ann-42")
    capture = django_capture_on_commit_callbacks
    first = _done(api_client, capture, kind="export", distinct_id="ann-42")
    second = _done(api_client, capture, kind="suppress", distinct_id="ann-42")
    third = _done(api_client, capture, kind="delete", distinct_id="ann-42")
    body = api_client.get(URL).json()
    assert [r["id"] for r in body["results"]] == [third["id"], second["id"], first["id"]]
    assert [r["requested_by"] for r in body["results"]] == ["root"] * 3
    # Once the person is deleted, no request names them any more.
    assert {r["distinct_id"] for r in body["results"]} == {""}
