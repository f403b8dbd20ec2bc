"""End to end with a real Celery worker (PostgreSQL and Redis): POST /api/track -> processing
-> rule -> workflow run on the `workflows` queue -> profile trait set; delays resume later."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from apps.events.models import Event
from apps.profiles import selectors as profile_selectors
from apps.workflows.models import NodeTrace, RunStatus, WorkflowRun
from tests.factories import chain, edge, node, published, route, track
from tests.http_server import LocalServer

pytestmark = [pytest.mark.postgres, pytest.mark.worker]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def traits_of(distinct_id: str) -> dict[str, Any]:
    profile = profile_selectors.profile_get_for_distinct_id(distinct_id)
    return profile.traits if profile is not None else {}


def test_track_to_rule_to_workflow_to_trait(tracker: Any, celery_worker: Any) -> None:
    graph = {
        "nodes": [
            node("start", "start"),
            node(
                "c",
                "condition",
                filter={"property": "event.properties.plan", "operator": "is", "value": "pro"},
            ),
            node("copy", "copy_property", **{"from": "event.properties.plan", "trait": "plan"}),
            node("n", "increment_trait", trait="upgrades"),
            node("free", "set_trait", trait="plan", value="free"),
        ],
        "edges": [
            edge("start", "c"),
            edge("c", "copy", "true"),
            edge("copy", "n"),
            edge("c", "free", "false"),
        ],
    }
    route(published(graph), "upgrade")
    track(tracker, "upgrade", "ann", plan="pro")
    track(tracker, "upgrade", "bob", plan="basic")
    wait_until(
        lambda: WorkflowRun.objects.filter(status=RunStatus.SUCCEEDED).count() == 2,
        "both runs succeeded",
    )
    assert traits_of("ann") == {"plan": "pro", "upgrades": 1}
    assert traits_of("bob") == {"plan": "free"}
    assert not Event.objects.filter(processed_at__isnull=True).exists()


def test_a_delay_resumes_on_the_worker_without_holding_it(tracker: Any, celery_worker: Any) -> None:
    graph = chain(
        node("a", "set_trait", trait="step", value=1),
        node("d", "delay", seconds=1),
        node("b", "set_trait", trait="step", value=2),
    )
    route(published(graph), "signup")
    track(tracker, "signup", "ann")
    wait_until(
        lambda: WorkflowRun.objects.filter(status=RunStatus.WAITING).exists(), "the run waits"
    )
    assert traits_of("ann") == {"step": 1}
    # The worker is free meanwhile: another person's run completes while the first waits.
    route(
        published(chain(node("x", "set_trait", trait="other", value=True)), name="other"), "other"
    )
    track(tracker, "other", "bob")
    wait_until(lambda: traits_of("bob") == {"other": True}, "the other run finished")
    wait_until(
        lambda: WorkflowRun.objects.filter(distinct_id="ann", status=RunStatus.SUCCEEDED).exists(),
        "the delayed run resumed",
    )
    assert traits_of("ann") == {"step": 2}


def test_parallel_http_branches_on_the_worker(
    tracker: Any, celery_worker: Any, http_server: LocalServer
) -> None:
    graph = {
        "nodes": [
            node("start", "start"),
            node("a", "http_request", method="GET", url=http_server.url("/slow?a")),
            node("b", "http_request", method="GET", url=http_server.url("/slow?b")),
        ],
        "edges": [edge("start", "a"), edge("start", "b")],
    }
    route(published(graph), "signup")
    track(tracker, "signup", "ann")
    wait_until(
        lambda: WorkflowRun.objects.filter(status=RunStatus.SUCCEEDED).exists(), "the run finished"
    )
    run = WorkflowRun.objects.get()
    assert run.duration_ms is not None
    assert run.duration_ms < 1800
    assert NodeTrace.objects.filter(run=run, port="success").count() == 2


def test_emitted_events_loop_until_the_depth_limit(tracker: Any, celery_worker: Any) -> None:
    route(
        published(
            chain(
                node("i", "increment_trait", trait="loops"),
                node("e", "emit_event", event_name="ping"),
            )
        ),
        "ping",
    )
    track(tracker, "ping", "ann")
    wait_until(
        lambda: Event.objects.filter(event_name="ping").count() == 6, "the chain of emitted events"
    )
    wait_until(
        lambda: not Event.objects.filter(processed_at__isnull=True).exists(), "all processed"
    )
    wait_until(
        lambda: WorkflowRun.objects.filter(status=RunStatus.SUCCEEDED).count() == 5, "five runs"
    )
    time.sleep(0.5)
    assert WorkflowRun.objects.count() == 5
    assert traits_of("ann") == {"loops": 5}
