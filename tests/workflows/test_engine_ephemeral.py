"""Events of ephemeral sources are not stored, yet rules route them: their runs carry the
event's payload instead of a reference to an event row, also across a delay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.events.models import Event
from apps.sources import services as source_services
from apps.workflows import services
from apps.workflows.models import NodeTrace, RunStatus, WorkflowRun
from tests.clients import tracking_client_for
from tests.factories import chain, node, profile_of, published, route, track

pytestmark = pytest.mark.django_db


@pytest.fixture
def kiosk() -> Any:
    return tracking_client_for(source_services.source_create(name="Kiosk", ephemeral=True))


def test_rules_route_events_of_ephemeral_sources(kiosk: Any) -> None:
    workflow = published(
        chain(node("c", "copy_property", **{"from": "event.properties.plan", "trait": "plan"}))
    )
    route(workflow, "tap")

    track(kiosk, "tap", "visitor", plan="pro")

    assert not Event.objects.exists()
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.event_id, run.event_ref) == (None, None)
    assert run.distinct_id == "visitor"
    assert run.profile_id == profile_of("visitor").pk
    assert run.state == {}  # the payload is dropped once the run ended
    assert profile_of("visitor").traits == {"plan": "pro"}
    start = NodeTrace.objects.get(run=run, node_id="start")
    assert start.input["event_name"] == "tap"
    assert start.input["properties"] == {"plan": "pro"}
    assert start.input["id"] is None


def test_an_ephemeral_run_keeps_its_event_across_a_delay(kiosk: Any) -> None:
    graph = chain(
        node("d", "delay", minutes=5),
        node("c", "copy_property", **{"from": "event.properties.plan", "trait": "plan"}),
    )
    route(published(graph), "tap")
    track(kiosk, "tap", "visitor", plan="team")
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.WAITING
    assert run.state["event"]["properties"] == {"plan": "team"}

    WorkflowRun.objects.filter(pk=run.pk).update(resume_at=timezone.now() - timedelta(seconds=1))
    run.state["pending"][0]["due"] = (timezone.now() - timedelta(seconds=1)).isoformat()
    WorkflowRun.objects.filter(pk=run.pk).update(state=run.state)
    assert services.runs_resume_due() == 1

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.state == {}
    assert profile_of("visitor").traits == {"plan": "team"}
