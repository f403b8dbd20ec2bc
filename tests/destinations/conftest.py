"""Fixtures of the destination tests: each starts with no compiled routing rules in memory
(a rule of an earlier test must not route this one's events)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.workflows import matching
from apps.workflows.services import inputs


@pytest.fixture(autouse=True)
def _fresh_rules() -> Iterator[None]:
    matching.rules_cache_clear()
    inputs.version_graph.cache_clear()
    yield
    matching.rules_cache_clear()
