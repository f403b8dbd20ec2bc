"""Helpers for the workflow tests: graphs, workflows and rules made through the services, a
real local HTTP server, and events sent through the tracking API."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from apps.profiles import selectors as profile_selectors
from apps.profiles.models import Profile
from apps.workflows import rules, services
from apps.workflows.models import Rule, Workflow


@pytest.fixture(autouse=True)
def _fresh_rules() -> Iterator[None]:
    rules.rules_cache_clear()
    services._version_graph.cache_clear()
    yield
    rules.rules_cache_clear()


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
    workflow = services.workflow_create(name=name, graph=graph)
    services.workflow_publish(workflow=workflow)
    workflow.refresh_from_db()
    return workflow


def route(workflow: Workflow, event_name: str = "", **fields: Any) -> Rule:
    return services.rule_create(
        name=f"to {workflow.name}", workflow=workflow, event_name=event_name, **fields
    )


def profile_of(distinct_id: str) -> Profile:
    profile = profile_selectors.profile_get_for_distinct_id(distinct_id)
    assert profile is not None, f"no profile for {distinct_id}"
    return profile


def track(tracker: Any, name: str, /, distinct_id: str = "u1", **properties: Any) -> None:
    response = tracker.post(
        {"event_name": name, "distinct_id": distinct_id, "properties": properties}
    )
    assert response.status_code == 200, response.content


class Recorder(BaseHTTPRequestHandler):
    """Paths: /ok (JSON 200), /slow (200 after 1 s), /missing (404), /flaky (503 twice per
    key, then 200), /down (always 503). Every request is recorded on the server."""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self) -> None:
        server: LocalServer = self.server  # type: ignore[assignment]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with server.lock:
            server.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "body": body.decode(),
                    "headers": dict(self.headers),
                }
            )
        path = self.path.split("?")[0]
        status, payload = 200, {"ok": True, "path": path}
        if path == "/slow":
            time.sleep(1.0)
        elif path == "/missing":
            status, payload = 404, {"error": "missing"}
        elif path == "/down":
            status, payload = 503, {"error": "down"}
        elif path == "/flaky":
            with server.lock:
                server.flaky += 1
                if server.flaky <= 2:
                    status, payload = 503, {"error": "try again"}
        data = orjson.dumps(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _reply


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Recorder)
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.flaky = 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out (the timeout tests) closed its end: nothing to report.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture
def http_server(settings: Any) -> Iterator[LocalServer]:
    # The outbound client refuses loopback unless an operator allows it: the tests do.
    settings.CDP_OUTBOUND_ALLOW = ["127.0.0.1"]
    server = LocalServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def TrackingClient_for(source: Any) -> Any:
    from django.test import Client

    from tests.conftest import TrackingClient

    return TrackingClient(Client(), source.write_key)
