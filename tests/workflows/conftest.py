"""Fixtures of the workflow tests; the graphs, workflows and rules they build come from
tests/factories.py, the local HTTP server from tests/http_server.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from apps.workflows import matching
from apps.workflows.services import inputs
from tests.http_server import LocalServer


@pytest.fixture(autouse=True)
def _fresh_rules() -> Iterator[None]:
    matching.rules_cache_clear()
    inputs.version_graph.cache_clear()
    yield
    matching.rules_cache_clear()


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
