"""A session's entry details come from its earliest event, even when that event arrives late."""

from __future__ import annotations

from apps.events.models import SESSION_ENTRY_FIELDS, Event, Session
from apps.events.sessions import _entry_details


def test_entry_fields_list_every_detail_a_session_takes_from_its_first_event():
    class Bare:
        context: dict = {}
        distinct_id = "ann"

    assert set(_entry_details(Bare())) == set(SESSION_ENTRY_FIELDS)


def test_a_late_earlier_event_becomes_the_sessions_entry(tracker):
    later = {
        "event_name": "page_view",
        "distinct_id": "ann",
        "timestamp": "2026-03-01T12:10:00Z",
        "context": {"page": {"url": "https://shop.example/cart"}},
    }
    earlier = {
        "event_name": "page_view",
        "distinct_id": "ann",
        "timestamp": "2026-03-01T12:00:00Z",
        "context": {
            "page": {
                "url": "https://shop.example/?utm_source=news&utm_campaign=spring",
                "referrer": "https://www.google.com/search?q=shoes",
            },
            "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
            "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        },
    }
    assert tracker.post(later).status_code == 200
    assert tracker.post(earlier).status_code == 200

    [session] = Session.objects.all()
    assert session.started_at.isoformat() == "2026-03-01T12:00:00+00:00"
    assert session.event_count == 2
    assert session.landing_page == "https://shop.example/?utm_source=news&utm_campaign=spring"
    assert session.utm_campaign == "spring"
    assert session.referring_domain == "www.google.com"
    assert session.os == "iOS"
    assert set(Event.objects.values_list("session_id", flat=True)) == {session.id}
