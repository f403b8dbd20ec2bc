"""Fixtures of the consents tests: events sent as an SDK would (tests/factories.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.consents.privacy.suppression import key_cache_clear
from tests.factories import Sender


@pytest.fixture
def send(tracker: Any) -> Sender:
    return Sender(tracker)


@pytest.fixture(autouse=True)
def _suppression_key_fresh() -> Iterator[None]:
    """Each test's database starts without the install key: don't reuse another test's."""
    key_cache_clear()
    yield
    key_cache_clear()
