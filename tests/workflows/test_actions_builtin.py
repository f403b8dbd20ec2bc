"""Each built-in action, through real runs (events sent to /api/track, processed, routed) and
through test runs (rolled back)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from apps.events.models import Event
from apps.segments import services as segment_services
from apps.segments.models import SegmentMembership
from apps.workflows import services
from apps.workflows.actions import action_classes
from apps.workflows.models import NodeTrace, RunStatus, WorkflowRun
from tests.factories import chain, edge, node, profile_of, published, route, track
from tests.http_server import LocalServer

pytestmark = pytest.mark.django_db


def run_on(
    tracker: Any, graph: dict[str, Any], name: str = "signup", **properties: Any
) -> WorkflowRun:
    route(published(graph), name)
    track(tracker, name, "u1", **properties)
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def test_registry_lists_every_builtin_with_ports_and_schema() -> None:
    actions = action_classes()
    for name in (
        "start",
        "end",
        "condition",
        "set_trait",
        "copy_property",
        "increment_trait",
        "append_trait",
        "delete_trait",
        "add_to_segment",
        "remove_from_segment",
        "merge_by",
        "emit_event",
        "http_request",
        "template",
        "delay",
        "counter",
        "log",
    ):
        assert name in actions
    assert actions["condition"].describe()["ports"] == ["true", "false", "error"]
    assert actions["http_request"].describe()["ports"] == ["success", "error"]
    assert actions["end"].describe()["ports"] == ["error"]
    assert actions["set_trait"].describe()["config_schema"]["required"] == ["trait", "value"]


def test_set_trait_with_a_typed_template(tracker: Any) -> None:
    run_on(
        tracker,
        chain(
            node("a", "set_trait", trait="plan", value="{{ event.properties.plan }}"),
            node("b", "set_trait", trait="seats", value="{{ event.properties.seats }}"),
            node("c", "set_trait", trait="first_plan", value="x", once=True),
            node("d", "set_trait", trait="first_plan", value="y", once=True),
        ),
        plan="pro",
        seats=5,
    )
    traits = profile_of("u1").traits
    assert traits["plan"] == "pro"
    assert traits["seats"] == 5
    assert traits["first_plan"] == "x"


def test_copy_property_from_event_and_session(tracker: Any) -> None:
    graph = chain(
        node("a", "copy_property", **{"from": "event.properties.plan", "trait": "plan"}),
        node("b", "copy_property", **{"from": "event.properties.absent", "trait": "nothing"}),
        node("c", "copy_property", **{"from": "session.landing_page", "trait": "landing"}),
    )
    route(published(graph), "signup")
    response = tracker.post(
        {
            "event_name": "signup",
            "distinct_id": "u1",
            "properties": {"plan": "team"},
            "context": {"page": {"url": "https://example.com/pricing"}},
        }
    )
    assert response.status_code == 200
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED, run.error
    traits = profile_of("u1").traits
    assert traits["plan"] == "team"
    assert "nothing" not in traits
    assert traits["landing"] == Event.objects.get().session.landing_page


def test_increment_append_union_delete(tracker: Any) -> None:
    graph = chain(
        node("i", "increment_trait", trait="visits"),
        node("i2", "increment_trait", trait="visits", by="{{ event.properties.n }}"),
        node("a", "append_trait", trait="tags", value="a"),
        node("a2", "append_trait", trait="tags", value="a"),
        node(
            "u",
            "append_trait",
            trait="tags_unique",
            value="{{ event.properties.tag }}",
            unique=True,
        ),
        node(
            "u2",
            "append_trait",
            trait="tags_unique",
            value="{{ event.properties.tag }}",
            unique=True,
        ),
        node("s", "set_trait", trait="temp", value=1),
        node("d", "delete_trait", trait="temp"),
    )
    run_on(tracker, graph, n=2, tag="vip")
    traits = profile_of("u1").traits
    assert traits["visits"] == 3
    assert traits["tags"] == ["a", "a"]
    assert traits["tags_unique"] == ["vip"]
    assert "temp" not in traits


def test_add_and_remove_from_a_static_segment(tracker: Any) -> None:
    segment_services.segment_create(key="vips", name="VIPs", kind="static")
    segment_services.segment_create(key="leads", name="Leads", kind="static")
    graph = chain(
        node("add", "add_to_segment", segment="vips"),
        node("add2", "add_to_segment", segment="leads"),
        node("rm", "remove_from_segment", segment="leads"),
    )
    run_on(tracker, graph)
    live = SegmentMembership.objects.filter(exited_at__isnull=True, profile=profile_of("u1"))
    assert {m.segment.key for m in live} == {"vips"}


def test_add_to_a_dynamic_segment_fails_the_node(tracker: Any) -> None:
    segment_services.segment_create(
        key="pros",
        name="Pros",
        filter={"property": "traits.plan", "operator": "is", "value": "pro"},
    )
    route(published(chain(node("add", "add_to_segment", segment="pros"))), "signup")
    track(tracker, "signup")
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.FAILED
    assert "dynamic" in run.error
    assert NodeTrace.objects.get(run=run, node_id="add").error


def test_merge_by_email_merges_two_anonymous_profiles(tracker: Any) -> None:
    graph = chain(
        node("s", "copy_property", **{"from": "event.properties.email", "trait": "email"}),
        node("m", "merge_by", trait="email", kind="email"),
    )
    route(published(graph), "lead")
    track(tracker, "lead", "device-a", email="Ann@Example.com")
    track(tracker, "lead", "device-b", email="ann@example.com ")
    assert profile_of("device-a").pk == profile_of("device-b").pk
    assert WorkflowRun.objects.filter(status=RunStatus.SUCCEEDED).count() == 2


def test_emit_event_goes_through_the_pipeline_with_its_depth(tracker: Any) -> None:
    graph = chain(
        node(
            "e",
            "emit_event",
            event_name="upgraded",
            properties={"plan": "{{ event.properties.plan }}"},
        )
    )
    route(published(graph), "signup")
    follow = published(chain(node("t", "set_trait", trait="upgraded", value=True)), name="follow")
    route(follow, "upgraded")
    track(tracker, "signup", plan="pro")
    emitted = Event.objects.get(event_name="upgraded")
    assert emitted.properties == {"plan": "pro"}
    assert emitted.context["workflow"]["depth"] == 1
    assert emitted.distinct_id == "u1"
    assert emitted.processed_at is not None
    assert profile_of("u1").traits["upgraded"] is True
    assert WorkflowRun.objects.get(workflow=follow).depth == 1


def test_template_renders_into_a_variable(tracker: Any) -> None:
    graph = chain(
        node(
            "t",
            "template",
            template="Hi {{ event.properties.name }}, plan {{ profile.traits.plan }}",
            variable="greeting",
        ),
        node("s", "set_trait", trait="greeting", value="{{ vars.greeting }}!"),
    )
    route(
        published(chain(node("p", "set_trait", trait="plan", value="pro"))), "signup", priority=10
    )
    run_on_graph = published(graph, name="greet")
    route(run_on_graph, "greet")
    track(tracker, "signup")
    track(tracker, "greet", name="Ann")
    run = WorkflowRun.objects.get(workflow=run_on_graph)
    assert run.variables == {"greeting": "Hi Ann, plan pro"}
    assert profile_of("u1").traits["greeting"] == "Hi Ann, plan pro!"


def test_counter_counts_recent_events_of_the_profile(tracker: Any) -> None:
    graph = chain(
        node("c", "counter", event_name="page_view", minutes=60, variable="views"),
        node("s", "set_trait", trait="recent_views", value="{{ vars.views }}"),
    )
    route(published(graph), "checkout")
    for _ in range(3):
        track(tracker, "page_view")
    track(tracker, "page_view", distinct_id="someone-else")
    track(tracker, "checkout")
    assert profile_of("u1").traits["recent_views"] == 3


def test_condition_routes_true_and_false(tracker: Any) -> None:
    graph = {
        "nodes": [
            node("start", "start"),
            node(
                "c",
                "condition",
                filter={"property": "event.properties.plan", "operator": "is", "value": "pro"},
            ),
            node("yes", "set_trait", trait="segment", value="paying"),
            node("no", "set_trait", trait="segment", value="free"),
        ],
        "edges": [edge("start", "c"), edge("c", "yes", "true"), edge("c", "no", "false")],
    }
    route(published(graph), "signup")
    track(tracker, "signup", "a", plan="pro")
    track(tracker, "signup", "b", plan="free")
    assert profile_of("a").traits["segment"] == "paying"
    assert profile_of("b").traits["segment"] == "free"
    traces = NodeTrace.objects.filter(node_id="c").order_by("id")
    assert [t.port for t in traces] == ["true", "false"]


def test_condition_sees_traits_set_earlier_in_the_run(tracker: Any) -> None:
    graph = chain(
        node("s", "set_trait", trait="plan", value="pro"),
        node(
            "c", "condition", filter={"property": "traits.plan", "operator": "is", "value": "pro"}
        ),
    )
    graph["nodes"].append(node("yes", "set_trait", trait="checked", value=True))
    graph["edges"].append(edge("c", "yes", "true"))
    run_on(tracker, graph)
    assert profile_of("u1").traits["checked"] is True


def test_log_writes_the_trace(tracker: Any, caplog: Any) -> None:
    run = run_on(
        tracker,
        chain(node("l", "log", message="signed up: {{ event.distinct_id }}", level="warning")),
    )
    trace = NodeTrace.objects.get(run=run, node_id="l")
    assert trace.output["logs"] == ["signed up: u1"]
    assert "signed up: u1" in caplog.text


def test_http_request_success_sends_the_rendered_request(
    tracker: Any, http_server: LocalServer
) -> None:
    graph = chain(
        node(
            "h",
            "http_request",
            method="POST",
            url=http_server.url("/ok"),
            headers={"X-Plan": "{{ event.properties.plan }}"},
            body={"user": "{{ event.distinct_id }}", "plan": "{{ event.properties.plan }}"},
        )
    )
    graph["nodes"].append(
        node("s", "set_trait", trait="synced", value="{{ vars.x | default(true) }}")
    )
    graph["edges"] = [edge("start", "h"), edge("h", "s", "success")]
    run = run_on(tracker, graph, plan="pro")
    [request] = http_server.requests
    assert request["method"] == "POST"
    assert request["headers"]["X-Plan"] == "pro"
    assert orjson.loads(request["body"]) == {"user": "u1", "plan": "pro"}
    trace = NodeTrace.objects.get(run=run, node_id="h")
    assert trace.port == "success"
    assert trace.output["payload"] == {"status": 200, "body": {"ok": True, "path": "/ok"}}


def test_http_request_4xx_fires_error_and_5xx_is_retried(
    tracker: Any, http_server: LocalServer
) -> None:
    graph = {
        "nodes": [
            node("start", "start"),
            node("missing", "http_request", method="GET", url=http_server.url("/missing")),
            node(
                "flaky",
                "http_request",
                method="GET",
                url=http_server.url("/flaky"),
                retries=3,
                backoff=0.05,
            ),
            node("on_missing", "set_trait", trait="missing", value=True),
            node("on_flaky", "set_trait", trait="flaky", value="{{ vars.none | default('ok') }}"),
        ],
        "edges": [
            edge("start", "missing"),
            edge("start", "flaky"),
            edge("missing", "on_missing", "error"),
            edge("flaky", "on_flaky", "success"),
        ],
    }
    run = run_on(tracker, graph)
    traits = profile_of("u1").traits
    assert traits["missing"] is True
    assert traits["flaky"] == "ok"
    attempts = NodeTrace.objects.filter(run=run, node_id="flaky").order_by("attempt")
    assert [(t.attempt, t.port) for t in attempts] == [(1, ""), (2, ""), (3, "success")]
    assert "503" in attempts[0].error


def test_delay_and_emit_in_test_mode(db: None, http_server: LocalServer) -> None:
    graph = chain(
        node("d", "delay", minutes=10),
        node(
            "h",
            "http_request",
            url="https://example.invalid/hook",
            body="{{ event.properties.plan }}",
        ),
        node(
            "h2", "http_request", url="https://example.invalid/x", test_url=http_server.url("/ok")
        ),
        node("e", "emit_event", event_name="tested"),
    )
    for e in graph["edges"][2:]:
        e["port"] = "success"
    workflow = services.workflow_create(name="t", graph=graph)
    result = services.workflow_test_run(
        workflow=workflow,
        event_payload={"event_name": "signup", "distinct_id": "t1", "properties": {"plan": "pro"}},
    )
    assert result["status"] == "succeeded", result
    assert [r["node"] for r in result["trace"]] == ["start", "d", "h", "h2", "e"]
    assert "skipped a wait" in result["trace"][1]["output"]["logs"][0]
    recorded = result["requests"]
    assert recorded[0]["url"] == "https://example.invalid/hook"
    assert recorded[0]["sent"] is False
    assert recorded[0]["body"] == "pro"
    assert recorded[1]["sent"] is True
    assert len(http_server.requests) == 1
    assert result["changes"][0]["event_name"] == "tested"
    assert not Event.objects.filter(event_name="tested").exists()
