"""Fixtures of the destination tests: a local webhook target, an event sender, and no
compiled routing rules in memory at the start (a rule of an earlier test must not route this
one's events)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.workflows import matching
from apps.workflows.services import inputs
from tests.destinations.target import WebhookTarget
from tests.factories import Sender


@pytest.fixture
def target() -> Iterator[WebhookTarget]:
    """A local webhook receiver (tests of signatures define their own, with a secret)."""
    with WebhookTarget() as server:
        yield server


@pytest.fixture
def send(tracker: Any) -> Sender:
    return Sender(tracker)


@pytest.fixture(autouse=True)
def _fresh_rules() -> Iterator[None]:
    matching.rules_cache_clear()
    inputs.version_graph.cache_clear()
    yield
    matching.rules_cache_clear()
