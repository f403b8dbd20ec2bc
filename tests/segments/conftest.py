"""Fixtures of the segment tests: people sent through the tracking endpoints and segments made
through the services (tests/factories.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import People, segment_make


@pytest.fixture
def people(tracker: Any) -> People:
    return People(tracker)


@pytest.fixture
def make_segment(db: None):
    """Create a segment through the service, running the commit hooks (its first compute)."""
    return segment_make
