"""The http_request action goes through the guarded outbound client: a URL templated from public
event properties cannot make a worker call loopback or the metadata address, live or in test
mode, and an allowed server's answer is kept in the trace, capped."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from apps.workflows import services
from apps.workflows.models import TRUNCATED_MARKER, NodeTrace, RunStatus, WorkflowRun
from tests.factories import chain, edge, node, published, route, track
from tests.http_server import LocalServer


@pytest.fixture
def nothing_allowed(settings: Any, http_server: LocalServer) -> LocalServer:
    """The local server, with the allow list the http_server fixture sets taken back."""
    settings.CDP_OUTBOUND_ALLOW = []
    return http_server


def test_a_templated_url_to_loopback_fails_the_node_without_a_call(
    tracker: Any, nothing_allowed: LocalServer
) -> None:
    graph = chain(node("h", "http_request", method="GET", url="{{ event.properties.hook }}"))
    graph["nodes"].append(node("s", "set_trait", trait="called", value=True))
    graph["edges"].append(edge("h", "s", "success"))
    route(published(graph), "signup")
    port = nothing_allowed.server_address[1]
    track(tracker, "signup", "u1", hook=f"http://2130706433:{port}/latest/meta-data/")
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.FAILED
    traces = list(NodeTrace.objects.filter(run=run, node_id="h"))
    # Refused once, not retried: retrying cannot change the policy's answer.
    assert len(traces) == 1
    assert "internal address" in traces[0].error
    assert nothing_allowed.requests == []


def test_test_mode_guards_the_test_url_too(db: None, nothing_allowed: LocalServer) -> None:
    graph = chain(
        node(
            "h",
            "http_request",
            url="https://example.invalid/hook",
            test_url=f"http://[::ffff:127.0.0.1]:{nothing_allowed.server_address[1]}/ok",
        )
    )
    workflow = services.workflow_create(name="t", graph=graph)
    result = services.workflow_test_run(
        workflow=workflow, event_payload={"event_name": "signup", "distinct_id": "t1"}
    )
    assert result["status"] == "failed"
    assert "internal address" in result["error"]
    assert nothing_allowed.requests == []


def test_an_allowed_server_answers_and_the_trace_keeps_it_capped(
    settings: Any, tracker: Any, http_server: LocalServer
) -> None:
    settings.CDP_WORKFLOW_TRACE_MAX_BYTES = 300
    long_path = "/" + "p" * 2000  # the server echoes its path in its answer
    graph = chain(node("h", "http_request", method="GET", url=http_server.url(long_path)))
    route(published(graph), "signup")
    track(tracker, "signup", "u1")
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(http_server.requests) == 1
    trace = NodeTrace.objects.get(run=run, node_id="h")
    assert trace.port == "success"
    stored = orjson.dumps(trace.output)
    assert len(stored) < 1000
    assert TRUNCATED_MARKER.encode() in stored
