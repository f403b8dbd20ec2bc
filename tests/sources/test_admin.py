"""The Django admin for sources (search, filters, key rotation, curl example) and events."""

from __future__ import annotations

import pytest
from django.test import Client, TestCase

from apps.events.models import Event, Session
from apps.sources import services
from apps.sources.models import EventSource
from tests.clients import TrackingClient

CHANGELIST = "/admin/sources/eventsource/"
EVENT = {"event_name": "page_viewed", "distinct_id": "user-1"}


@pytest.fixture
def admin_client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def run_action(admin_client, action, *sources):
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = admin_client.post(
            CHANGELIST,
            {"action": action, "_selected_action": [str(s.pk) for s in sources]},
            follow=True,
        )
    assert response.status_code == 200
    return response


def test_changelist_search_and_filters(admin_client, source):
    services.source_create(name="Mobile app", ephemeral=True)

    page = admin_client.get(CHANGELIST)
    assert page.status_code == 200
    assert b"Website" in page.content
    assert b"Mobile app" in page.content

    found = admin_client.get(CHANGELIST, {"q": "mobile"})
    assert [s.name for s in found.context["cl"].result_list] == ["Mobile app"]

    by_key = admin_client.get(CHANGELIST, {"q": source.write_key})
    assert [s.name for s in by_key.context["cl"].result_list] == ["Website"]

    ephemeral = admin_client.get(CHANGELIST, {"ephemeral__exact": "1"})
    assert [s.name for s in ephemeral.context["cl"].result_list] == ["Mobile app"]

    rest = admin_client.get(CHANGELIST, {"bridge__exact": "rest", "enabled__exact": "1"})
    assert {s.name for s in rest.context["cl"].result_list} == {"Website", "Mobile app"}


def test_change_page_shows_the_write_key_with_a_curl_example(admin_client, source):
    page = admin_client.get(f"{CHANGELIST}{source.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert source.write_key in html
    assert "curl -X POST http://testserver/api/track" in html
    assert f"-u &#x27;{source.write_key}:&#x27;" in html


def test_the_curl_example_works(admin_client, source):
    """The example in the admin, pasted as is, is accepted by the tracking API."""
    import shlex

    from apps.sources.admin import curl_example

    args = shlex.split(curl_example(source, "http://testserver").replace("\\\n", " "))
    user = args[args.index("-u") + 1].rstrip(":")
    body = args[args.index("-d") + 1]

    response = TrackingClient(Client(), user).post(None, raw=body.encode())
    assert response.status_code == 200, response.content
    assert Event.objects.get().event_name == "signed_up"


def test_rotate_key_action_changes_the_key_and_the_old_one_stops_working(
    admin_client, source, tracker
):
    other = services.source_create(name="Other")
    old_key, other_key = source.write_key, other.write_key
    assert tracker.post(EVENT).status_code == 200

    response = run_action(admin_client, "rotate_write_key", source)

    assert b"Rotated the write key of 1 source(s)." in response.content
    source.refresh_from_db()
    other.refresh_from_db()
    assert source.write_key != old_key
    assert other.write_key == other_key
    assert tracker.post(EVENT).status_code == 401
    assert TrackingClient(Client(), source.write_key).post(EVENT).status_code == 200


def test_disable_and_enable_actions(admin_client, source, tracker):
    assert tracker.post(EVENT).status_code == 200

    run_action(admin_client, "disable", source)
    source.refresh_from_db()
    assert not source.enabled
    assert tracker.post(EVENT).status_code == 401

    run_action(admin_client, "enable", source)
    source.refresh_from_db()
    assert source.enabled
    assert tracker.post(EVENT).status_code == 200


def test_add_page_creates_a_source_with_a_write_key(admin_client):
    page = admin_client.get(f"{CHANGELIST}add/")
    assert page.status_code == 200

    response = admin_client.post(
        f"{CHANGELIST}add/",
        {
            "name": "Shop",
            "description": "The online shop",
            "bridge": "rest",
            "enabled": "on",
            "requires_consent": "on",
            "session_timeout_minutes": "45",
            "allowed_origins": '["https://shop.example.com"]',
            "rate_limit_per_second": "500",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    shop = EventSource.objects.get(name="Shop")
    assert shop.requires_consent
    assert not shop.ephemeral
    assert shop.session_timeout_minutes == 45
    assert shop.allowed_origins == ["https://shop.example.com"]
    assert len(shop.write_key) >= 32
    assert TrackingClient(Client(), shop.write_key).post(EVENT).status_code == 200


def test_add_page_reports_invalid_input(admin_client):
    response = admin_client.post(
        f"{CHANGELIST}add/",
        {
            "name": "",
            "bridge": "nope",
            "session_timeout_minutes": "30",
            "allowed_origins": "[]",
            "rate_limit_per_second": "10",
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"name", "bridge"}
    assert not EventSource.objects.exists()


def test_events_and_sessions_admin_pages_load_read_only(admin_client, tracker):
    assert (
        tracker.post({"batch": [EVENT, {**EVENT, "event_name": "signed_up"}]}).json()["accepted"]
        == 2
    )
    event = Event.objects.get(event_name="signed_up")
    session = Session.objects.get()

    events = admin_client.get("/admin/events/event/")
    assert events.status_code == 200
    assert b"signed_up" in events.content
    assert admin_client.get("/admin/events/event/", {"q": "user-1"}).status_code == 200
    detail = admin_client.get(f"/admin/events/event/{event.pk}/change/")
    assert detail.status_code == 200
    assert b"signed_up" in detail.content
    assert b'name="_save"' not in detail.content  # nothing to save: read-only
    assert admin_client.get("/admin/events/event/add/").status_code == 403

    sessions = admin_client.get("/admin/events/session/")
    assert sessions.status_code == 200
    assert b"user-1" in sessions.content
    assert admin_client.get(f"/admin/events/session/{session.pk}/change/").status_code == 200
    assert admin_client.get("/admin/events/session/add/").status_code == 403

    index = admin_client.get("/admin/")
    assert b"/admin/events/event/add/" not in index.content
    assert b"/admin/sources/eventsource/add/" in index.content
