"""Test data made through the real services: sources, users with given permissions, events
and identity calls sent through the real ingest (the tracking endpoints), segments, workflows
and routing rules; and the lookups the tests assert with."""

from __future__ import annotations

import importlib
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client, TestCase
from django.utils import timezone

from apps.events.models import Event
from apps.profiles import selectors as profile_selectors
from apps.profiles.models import Profile
from apps.segments import services as segment_services
from apps.segments.models import Segment, SegmentMembership
from apps.sources import services as source_services
from apps.sources.models import EventSource
from apps.workflows import services as workflow_services
from apps.workflows.models import Rule, Workflow

PASSWORD = "pw-123456!"

# --- Sources and users --------------------------------------------------------------------------


def source_make(name: str = "Website", **fields: Any) -> EventSource:
    return source_services.source_create(name=name, **fields)


def user_make(
    username: str,
    *permissions: str,
    superuser: bool = False,
    staff: bool = False,
    password: str = PASSWORD,
) -> Any:
    """A user holding `permissions` ("app_label.codename"), or a superuser."""
    model = get_user_model()
    if superuser:
        return model.objects.create_superuser(username=username, password=password)
    user = model.objects.create_user(username=username, password=password, is_staff=staff)
    for name in permissions:
        app_label, codename = name.split(".", 1)
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


# --- Profiles -----------------------------------------------------------------------------------

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """A fixed instant plus `minutes`: for histories independent of the clock."""
    return T0 + timedelta(minutes=minutes)


def ago(days: float = 0, minutes: float = 0) -> datetime:
    """Now minus a delay: for time-based conditions, which read the clock."""
    return timezone.now() - timedelta(days=days, minutes=minutes)


def profile_of(distinct_id: str) -> Profile:
    profile = profile_selectors.profile_get_for_distinct_id(distinct_id)
    assert profile is not None, f"no profile for {distinct_id}"
    return profile


class Sender:
    """Calls the tracking endpoints with the source's write key, at fixed times (`at`);
    processing runs eagerly."""

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


# --- Segments -----------------------------------------------------------------------------------

PRO = {"property": "traits.plan", "operator": "is", "value": "pro"}
BUYER = {"performed": "purchase", "at_least": 2, "within_days": 30}


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


def segment_make(key: str, filter: Any = None, *, kind: str = "dynamic", **fields: Any) -> Segment:
    """A segment made through the service, running the commit hooks (its first compute)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return segment_services.segment_create(
            key=key, name=fields.pop("name", key.title()), kind=kind, filter=filter, **fields
        )


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


# --- Workflows and routing rules ----------------------------------------------------------------


def node(node_id: str, action: str, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "action": action, "config": config}


def edge(source: str, target: str, port: str = "out") -> dict[str, Any]:
    return {"from": source, "port": port, "to": target}


def chain(*nodes: dict[str, Any]) -> dict[str, Any]:
    """start -> nodes[0] -> nodes[1] -> ... (each through its `out` port)."""
    all_nodes = [node("start", "start"), *nodes]
    edges = [edge(a["id"], b["id"]) for a, b in itertools.pairwise(all_nodes)]
    return {"nodes": all_nodes, "edges": edges}


def published(graph: dict[str, Any], name: str = "wf") -> Workflow:
    workflow = workflow_services.workflow_create(name=name, graph=graph)
    workflow_services.workflow_publish(workflow=workflow)
    workflow.refresh_from_db()
    return workflow


def route(workflow: Workflow, event_name: str = "", **fields: Any) -> Rule:
    return workflow_services.rule_create(
        name=f"to {workflow.name}", workflow=workflow, event_name=event_name, **fields
    )


def track(tracker: Any, name: str, /, distinct_id: str = "u1", **properties: Any) -> None:
    response = tracker.post(
        {"event_name": name, "distinct_id": distinct_id, "properties": properties}
    )
    assert response.status_code == 200, response.content


# --- Insights roles and logins ---------------------------------------------------------------


def roles_ensure() -> None:
    """The roles as the insights migration makes them; tests that flush the database (live
    servers, workers) remove migration data, so later tests make them again the same way."""
    if not Group.objects.filter(name="Marketer").exists():
        migration = importlib.import_module("apps.insights.migrations.0001_initial")
        migration.create_roles(django_apps, None)


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client
