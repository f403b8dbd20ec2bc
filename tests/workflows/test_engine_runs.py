"""The engine: concurrency of branches, error ports, atomic profile changes, delays, the depth
limit, traces and their bounds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import TestCase, override_settings
from django.utils import timezone

from apps.events.models import Event
from apps.workflows import services
from apps.workflows.models import TRUNCATED_MARKER, NodeTrace, RunStatus, WorkflowRun, cap_json
from tests.factories import chain, edge, node, profile_of, published, route, track
from tests.http_server import LocalServer

pytestmark = pytest.mark.django_db


def test_parallel_branches_run_concurrently(tracker: Any, http_server: LocalServer) -> None:
    graph = {
        "nodes": [
            node("start", "start"),
            node("a", "http_request", method="GET", url=http_server.url("/slow?a")),
            node("b", "http_request", method="GET", url=http_server.url("/slow?b")),
            node("sa", "set_trait", trait="a", value="{{ event.properties.x }}"),
            node("sb", "set_trait", trait="b", value=2),
        ],
        "edges": [
            edge("start", "a"),
            edge("start", "b"),
            edge("a", "sa", "success"),
            edge("b", "sb", "success"),
        ],
    }
    route(published(graph), "signup")
    track(tracker, "signup", x=1)
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(http_server.requests) == 2
    # Both 1-second calls were being answered at the same time (however slow the machine).
    assert http_server.most_in_flight == 2
    assert profile_of("u1").traits == {"a": 1, "b": 2}


def test_a_failure_goes_to_the_error_port_when_connected(
    tracker: Any, http_server: LocalServer
) -> None:
    graph = {
        "nodes": [
            node("start", "start"),
            node("h", "http_request", url=http_server.url("/down"), retries=1, backoff=0.01),
            node("ok", "set_trait", trait="synced", value=True),
            node("failed", "set_trait", trait="sync_error", value="{{ vars.x | default('down') }}"),
        ],
        "edges": [edge("start", "h"), edge("h", "ok", "success"), edge("h", "failed", "error")],
    }
    route(published(graph), "signup")
    track(tracker, "signup")
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert profile_of("u1").traits == {"sync_error": "down"}
    traces = list(NodeTrace.objects.filter(run=run, node_id="h").order_by("attempt"))
    assert [(t.attempt, t.port) for t in traces] == [(1, ""), (2, "error")]
    failed = NodeTrace.objects.get(run=run, node_id="failed")
    assert failed.input["error"].endswith("HTTP 503")


def test_a_failed_run_leaves_no_half_applied_profile(tracker: Any) -> None:
    graph = chain(
        node("a", "set_trait", trait="plan", value="pro"),
        node("b", "add_to_segment", segment="no-such-segment"),
        node("c", "set_trait", trait="after", value=True),
    )
    route(published(graph), "signup")
    track(tracker, "signup")
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.FAILED
    assert "no-such-segment" in run.error
    assert run.finished_at is not None
    assert run.duration_ms is not None
    assert profile_of("u1").traits == {}
    assert [t.node_id for t in NodeTrace.objects.filter(run=run).order_by("id")] == [
        "start",
        "a",
        "b",
    ]


def test_changes_that_cannot_apply_fail_the_run_and_apply_nothing(tracker: Any) -> None:
    graph = chain(
        node("a", "set_trait", trait="plan", value="pro"),
        node("b", "emit_event", event_name="x"),
        node("c", "increment_trait", trait="plan"),
    )
    route(published(graph), "signup")
    track(tracker, "signup")
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.FAILED
    assert "increment" in run.error
    assert profile_of("u1").traits == {}
    assert not Event.objects.filter(event_name="x").exists()


def test_a_delay_waits_then_resumes(tracker: Any) -> None:
    graph = chain(
        node("a", "set_trait", trait="step", value=1),
        node("d", "delay", minutes=30),
        node("b", "set_trait", trait="step", value=2),
    )
    route(published(graph), "signup")
    track(tracker, "signup")
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.WAITING
    assert profile_of("u1").traits == {"step": 1}
    [pending] = run.state["pending"]
    assert pending["node"] == "d"

    assert run.resume_at is not None
    assert abs((run.resume_at - timezone.now()).total_seconds() - 1800) < 60
    assert services.runs_resume_due() == 0  # not due yet
    due = timezone.now() - timedelta(seconds=1)
    run.state["pending"][0]["due"] = due.isoformat()
    run.resume_at = due
    run.save(update_fields=["state", "resume_at"])
    assert services.runs_resume_due() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.state == {}
    assert profile_of("u1").traits == {"step": 2}
    assert [t.node_id for t in NodeTrace.objects.filter(run=run).order_by("id")] == [
        "start",
        "a",
        "d",
        "b",
    ]
    assert services.run_resume(run_id=run.pk) is None  # a second resumption does nothing


@override_settings(CDP_WORKFLOW_MAX_DEPTH=3)
def test_the_depth_limit_stops_a_workflow_triggering_itself(tracker: Any) -> None:
    loop = chain(
        node("i", "increment_trait", trait="loops"), node("e", "emit_event", event_name="ping")
    )
    route(published(loop), "ping")
    track(tracker, "ping")
    assert WorkflowRun.objects.count() == 3
    assert sorted(WorkflowRun.objects.values_list("depth", flat=True)) == [0, 1, 2]
    assert Event.objects.filter(event_name="ping").count() == 4
    assert profile_of("u1").traits["loops"] == 3


def test_an_action_timeout_fails_the_node(tracker: Any, http_server: LocalServer) -> None:
    graph = {
        "nodes": [
            node("start", "start"),
            node("h", "http_request", url=http_server.url("/slow"), timeout=0.2, retries=0),
            node("late", "set_trait", trait="late", value=True),
        ],
        "edges": [edge("start", "h"), edge("h", "late", "error")],
    }
    route(published(graph), "signup")
    track(tracker, "signup")
    trace = NodeTrace.objects.get(node_id="h")
    assert "timed out" in trace.error
    assert trace.port == "error"
    assert profile_of("u1").traits == {"late": True}


def test_runs_record_version_event_timings_and_traces(tracker: Any) -> None:
    workflow = published(
        chain(node("t", "template", template="{{ event.properties.plan }}", variable="plan"))
    )
    rule = route(workflow, "signup")
    track(tracker, "signup", plan="pro")
    run = WorkflowRun.objects.get()
    event = Event.objects.get()
    assert run.version == workflow.published_version
    assert run.event == event
    assert run.event_ref == event.pk
    assert run.rule == rule
    assert run.distinct_id == "u1"
    assert run.profile_id == profile_of("u1").pk
    assert run.started_at <= run.finished_at
    assert run.variables == {"plan": "pro"}
    [start, template] = NodeTrace.objects.filter(run=run).order_by("id")
    assert start.port == "out"
    assert start.input["properties"] == {"plan": "pro"}
    assert template.output["variables"] == {"plan": "pro"}


def test_traces_are_capped() -> None:
    assert cap_json({"a": "x" * 100}, limit=1000) == {"a": "x" * 100}
    big = cap_json({"a": "x" * 20_000}, limit=1000)
    assert big[TRUNCATED_MARKER] is True
    assert big["bytes"] > 20_000
    assert len(big["preview"]) <= 1000


def test_large_payloads_are_truncated_in_stored_traces(tracker: Any) -> None:
    route(published(chain(node("l", "log", message="x"))), "signup")
    track(tracker, "signup", blob="y" * 20_000)
    start = NodeTrace.objects.get(node_id="start")
    assert start.input[TRUNCATED_MARKER] is True


def test_old_runs_are_purged(tracker: Any) -> None:
    route(published(chain(node("l", "log", message="x"))), "signup")
    track(tracker, "signup")
    track(tracker, "signup", "u2")
    old = WorkflowRun.objects.get(distinct_id="u1")
    WorkflowRun.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    assert services.runs_purge() == 1
    assert list(WorkflowRun.objects.values_list("distinct_id", flat=True)) == ["u2"]
    assert not NodeTrace.objects.filter(run_id=old.pk).exists()


def test_a_redelivered_task_does_not_run_a_rule_twice(tracker: Any) -> None:
    rule = route(published(chain(node("i", "increment_trait", trait="n"))), "signup")
    track(tracker, "signup")
    event = Event.objects.get()
    run = WorkflowRun.objects.get()
    assert (run.event_ref, run.rule_id) == (event.pk, rule.pk)
    assert services.runs_execute(run_ids=[run.pk]) == 0  # already ran: skipped
    # Dispatching the event again (processing redelivered) records no second run.
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert services.rules_dispatch(events=[event]) == 0
    assert WorkflowRun.objects.count() == 1
    assert profile_of("u1").traits == {"n": 1}


def test_test_runs_are_rolled_back(db: None) -> None:
    from apps.profiles import services as profile_services

    profile_services.people_apply(distinct_id="t1", ops={"set": {"plan": "free"}})
    profile = profile_of("t1")
    workflow = services.workflow_create(
        name="draft",
        graph=chain(
            node("c", "copy_property", **{"from": "event.properties.plan", "trait": "plan"}),
            node("i", "increment_trait", trait="upgrades"),
        ),
    )
    result = services.workflow_test_run(
        workflow=workflow,
        event_payload={"event_name": "upgrade", "properties": {"plan": "pro"}},
        profile=profile,
    )
    assert result["status"] == "succeeded"
    assert result["profile_after"]["traits"] == {"plan": "pro", "upgrades": 1}
    assert [r["node"] for r in result["trace"]] == ["start", "c", "i"]
    assert profile_of("t1").traits == {"plan": "free"}
    assert not WorkflowRun.objects.exists()


def test_test_runs_report_failures(db: None) -> None:
    workflow = services.workflow_create(
        name="draft",
        graph=chain(
            node("s", "set_trait", trait="n", value="x"), node("i", "increment_trait", trait="n")
        ),
    )
    result = services.workflow_test_run(
        workflow=workflow, event_payload={"event_name": "e", "distinct_id": "t2"}
    )
    assert result["status"] == "failed"
    assert "node 'i'" in result["error"]
    assert result["trace"][-1]["error"]
