"""What a run reads: its compiled workflow version, its event, its profile, and the
RunContext built from them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.utils import timezone

from apps.events.incoming import IncomingEvent
from apps.events.models import Event
from apps.profiles import selectors as profile_selectors
from apps.profiles.models import Profile
from apps.workflows.context import RunContext
from apps.workflows.engine import json_safe
from apps.workflows.graph import Graph, graph_compile
from apps.workflows.matching import event_depth
from apps.workflows.models import WorkflowRun, WorkflowVersion


@lru_cache(maxsize=256)
def version_graph(version_id: int) -> Graph:
    """Published versions never change: their compiled graphs are kept per process."""
    return graph_compile(WorkflowVersion.objects.only("graph").get(pk=version_id).graph)


def _session_view(event: Event) -> dict[str, Any]:
    session = getattr(event, "session", None) if getattr(event, "session_id", None) else None
    if session is None:
        return {}
    return {
        f.name: json_safe(getattr(session, f.attname))
        for f in session._meta.concrete_fields
        if f.name != "source"
    }


def _source_view(event: Event) -> dict[str, Any]:
    source = getattr(event, "source", None) if event.source_id else None
    if source is None:
        return {"id": str(event.source_id) if event.source_id else None}
    return {"id": str(source.pk), "name": source.name}


def event_from_payload(data: dict[str, Any]) -> Event:
    """An unsaved Event for ephemeral events and test runs."""
    if "received_at" in data:
        incoming = IncomingEvent.from_task_payload(data)
        data = {
            "source_id": incoming.source_id,
            "message_id": incoming.message_id,
            "event_name": incoming.event_name,
            "distinct_id": incoming.distinct_id,
            "timestamp": incoming.timestamp,
            "category": incoming.category,
            "properties": incoming.properties,
            "context": incoming.context,
        }
    timestamp = data.get("timestamp") or timezone.now()
    if isinstance(timestamp, str):
        timestamp = datetime.fromisoformat(timestamp)
    fields: dict[str, Any] = {
        "source_id": data.get("source_id"),
        "message_id": str(data.get("message_id") or "test"),
        "event_name": str(data.get("event_name") or ""),
        "distinct_id": str(data.get("distinct_id") or ""),
        "category": str(data.get("category") or "custom"),
        "timestamp": timestamp,
        "received_at": timezone.now(),
        "properties": data.get("properties") or {},
        "context": data.get("context") or {},
    }
    return Event(**fields)


def run_context(
    *,
    workflow_id: int,
    event: Event,
    profile: Profile | None,
    run_key: str,
    test: bool = False,
    variables: dict[str, Any] | None = None,
    depth: int | None = None,
) -> RunContext:
    return RunContext(
        workflow_id=workflow_id,
        distinct_id=event.distinct_id,
        event=event,
        profile=profile,
        session=_session_view(event),
        source=_source_view(event),
        depth=event_depth(event) if depth is None else depth,
        test=test,
        run_key=run_key,
        variables=dict(variables or {}),
    )


def profiles_for(distinct_ids: list[str]) -> dict[str, Profile]:
    return profile_selectors.profiles_for_distinct_ids(distinct_ids) if distinct_ids else {}


def profile_for(distinct_id: str) -> Profile | None:
    return profile_selectors.profile_get_for_distinct_id(distinct_id) if distinct_id else None


def run_event(run: WorkflowRun, events: Mapping[int, Event]) -> Event | None:
    if run.event_ref is not None:
        return events.get(run.event_ref)
    payload = run.state.get("event")
    return event_from_payload(payload) if payload else None
