"""Helpers for the profile tests: send events and identity calls as an SDK would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apps.profiles import selectors
from apps.profiles.models import Profile

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def profile_of(distinct_id: str) -> Profile:
    profile = selectors.profile_get_for_distinct_id(distinct_id)
    assert profile is not None, f"no profile for {distinct_id}"
    return profile


class Sender:
    """Calls the tracking endpoints with the source's write key; processing runs eagerly."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker
        self._n = 0

    def _ok(self, payload: Any, path: str) -> dict[str, Any]:
        response = self.tracker.post(payload, path=path)
        assert response.status_code == 200, response.content
        return response.json()

    def event(
        self, distinct_id: str, minutes: float = 0, name: str = "page_view", **properties: Any
    ) -> dict[str, Any]:
        return {
            "event_name": name,
            "distinct_id": distinct_id,
            "timestamp": at(minutes).isoformat(),
            "properties": properties,
        }

    def track(
        self, distinct_id: str, minutes: float = 0, name: str = "page_view", **properties: Any
    ) -> dict[str, Any]:
        return self._ok(self.event(distinct_id, minutes, name, **properties), "/api/track")

    def batch(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        body = self._ok({"batch": events}, "/api/track")
        assert body["accepted"] == len(events), body
        return body

    def identify(
        self,
        distinct_id: str,
        anonymous_id: str | None = None,
        minutes: float = 0,
        message_id: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        payload = {"distinct_id": distinct_id, "timestamp": at(minutes).isoformat(), **fields}
        if anonymous_id is not None:
            payload["anonymous_id"] = anonymous_id
        if message_id is not None:
            payload["message_id"] = message_id
        return self._ok(payload, "/api/identify")

    def alias(self, distinct_id: str, alias: str, minutes: float = 0) -> dict[str, Any]:
        return self._ok(
            {"distinct_id": distinct_id, "alias": alias, "timestamp": at(minutes).isoformat()},
            "/api/alias",
        )

    def people(self, distinct_id: str, minutes: float | None = None, **ops: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {"distinct_id": distinct_id, **ops}
        if minutes is not None:
            payload["timestamp"] = at(minutes).isoformat()
        return self._ok(payload, "/api/people")

    def group(self, distinct_id: str, group_key: str, group_id: str, action: str = "add") -> Any:
        return self._ok(
            {
                "distinct_id": distinct_id,
                "group_key": group_key,
                "group_id": group_id,
                "action": action,
            },
            "/api/groups",
        )


@pytest.fixture
def send(tracker: Any) -> Sender:
    return Sender(tracker)
