"""Helpers shared by the native /api/track tests: the response shapes and what was stored."""

from __future__ import annotations

from typing import Any

from apps.events.models import Event

EVENT: dict[str, Any] = {"event_name": "signed_up", "distinct_id": "user-1"}


def event(name: str = "signed_up", distinct_id: str = "user-1", **fields: Any) -> dict[str, Any]:
    return {"event_name": name, "distinct_id": distinct_id, **fields}


def ok(response: Any) -> dict[str, Any]:
    """The 200 body, checked for its shape."""
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"accepted", "duplicates", "rejected", "warnings"}, body
    return body


def error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The error object of a 4xx/5xx, checked for the one error contract."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    err = body["error"]
    assert set(err) >= {"code", "message", "field"}, body
    assert isinstance(err["message"], str)
    assert err["message"]
    if code is not None:
        assert err["code"] == code, body
    return err


def stored_names() -> list[str]:
    return list(Event.objects.order_by("id").values_list("event_name", flat=True))


def warnings_of(body: dict[str, Any]) -> set[tuple[int, str]]:
    return {(w["index"], w["field"]) for w in body["warnings"]}
