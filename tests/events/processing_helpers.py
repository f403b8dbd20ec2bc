"""Helpers shared by the processing tests: user agents, event times, what processing made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from apps.events.models import Event, Session

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.91 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
SAFARI_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.82 Mobile Safari/537.36"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
EDGE_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

# A Tuesday at noon UTC, well in the past: timestamps are kept as sent.
T0 = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


def at(minutes: float = 0, *, start: datetime = T0) -> str:
    return (start + timedelta(minutes=minutes)).isoformat()


def visit(
    name: str = "page_view",
    distinct_id: str = "visitor-1",
    minutes: float = 0,
    *,
    start: datetime = T0,
    **fields: Any,
) -> dict[str, Any]:
    """One native event at `minutes` after `start`."""
    return {
        "event_name": name,
        "distinct_id": distinct_id,
        "timestamp": at(minutes, start=start),
        **fields,
    }


def send(tracker: Any, *events: dict[str, Any], **headers: str) -> dict[str, Any]:
    """Post the events as one batch; every one must be accepted."""
    response = tracker.post({"batch": list(events)}, **headers)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["accepted"] == len(events), body
    return body


def session_of(event_name: str) -> Session:
    event = Event.objects.select_related("session").get(event_name=event_name)
    assert event.processed_at is not None, f"{event_name} was not processed"
    assert event.session is not None, f"{event_name} has no session"
    return event.session


def sessions_by_event() -> dict[str, Any]:
    """event_name -> session id, for a run whose event names are unique."""
    return dict(Event.objects.values_list("event_name", "session_id"))
