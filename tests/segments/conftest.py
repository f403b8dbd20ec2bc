"""Helpers for the segment tests: people and events sent as an SDK would, timed around now
(time-based conditions read the clock), and segments made through the services."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import TestCase
from django.utils import timezone

from apps.events.models import Event
from apps.profiles import selectors as profile_selectors
from apps.profiles.models import Profile
from apps.segments import services
from apps.segments.models import Segment, SegmentMembership


def ago(days: float = 0, minutes: float = 0) -> datetime:
    return timezone.now() - timedelta(days=days, minutes=minutes)


def profile_of(distinct_id: str) -> Profile:
    profile = profile_selectors.profile_get_for_distinct_id(distinct_id)
    assert profile is not None, f"no profile for {distinct_id}"
    return profile


def members(key: str) -> set[str]:
    """The distinct ids (sorted first one of each profile) of a segment's current members."""
    rows = SegmentMembership.objects.filter(segment__key=key, exited_at__isnull=True)
    out = set()
    for membership in rows.select_related("profile"):
        ids = sorted(membership.profile.identities.values_list("distinct_id", flat=True))
        out.add(ids[0] if ids else str(membership.profile_id))
    return out


def segment_events(name: str, key: str | None = None) -> list[Event]:
    events = Event.objects.filter(event_name=name).order_by("id")
    return [e for e in events if key is None or e.properties.get("segment") == key]


class People:
    """Sends events, identify calls and people operations through the tracking endpoints,
    with processing run eagerly, at times relative to now."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker

    def _ok(self, payload: Any, path: str) -> dict[str, Any]:
        response = self.tracker.post(payload, path=path)
        assert response.status_code == 200, response.content
        return response.json()

    def track(
        self, distinct_id: str, name: str = "page_view", days_ago: float = 0, **properties: Any
    ) -> dict[str, Any]:
        return self._ok(
            {
                "event_name": name,
                "distinct_id": distinct_id,
                "timestamp": ago(days_ago).isoformat(),
                "properties": properties,
            },
            "/api/track",
        )

    def identify(self, distinct_id: str, anonymous_id: str | None = None, **fields: Any) -> Any:
        payload: dict[str, Any] = {"distinct_id": distinct_id, **fields}
        if anonymous_id is not None:
            payload["anonymous_id"] = anonymous_id
        return self._ok(payload, "/api/identify")

    def people(self, distinct_id: str, **ops: Any) -> dict[str, Any]:
        return self._ok({"distinct_id": distinct_id, **ops}, "/api/people")


@pytest.fixture
def people(tracker: Any) -> People:
    return People(tracker)


@pytest.fixture
def make_segment(db: None):
    """Create a segment through the service, running the commit hooks (its first compute)."""

    def make(key: str, filter: Any = None, *, kind: str = "dynamic", **fields: Any) -> Segment:
        with TestCase.captureOnCommitCallbacks(execute=True):
            return services.segment_create(
                key=key, name=fields.pop("name", key.title()), kind=kind, filter=filter, **fields
            )

    return make


PRO = {"property": "traits.plan", "operator": "is", "value": "pro"}
BUYER = {"performed": "purchase", "at_least": 2, "within_days": 30}
