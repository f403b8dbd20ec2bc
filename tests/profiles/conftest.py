"""Fixtures of the profile tests: events and identity calls sent as an SDK would
(tests/factories.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import Sender


@pytest.fixture
def send(tracker: Any) -> Sender:
    return Sender(tracker)
