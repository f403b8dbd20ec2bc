"""Per-source rate limits (apps/events/ratelimit.py): counted for the whole deployment in the
shared cache, without a round trip per request. What other web processes count is simulated by
adding to the shared count directly, as they do."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from apps.events import ratelimit
from apps.sources import services as source_services
from apps.sources.models import EventSource

pytestmark = pytest.mark.django_db


def _limited(limit: int) -> EventSource:
    return source_services.source_create(name=f"Limited {limit}", rate_limit_per_second=limit)


def _in_one_second(attempt: Callable[[], Any]) -> Any:
    """Run attempt() within one second of the clock (again if the second turned meanwhile)."""
    for _ in range(5):
        second = int(time.time())
        result = attempt()
        if int(time.time()) == second:
            return result, second
        ratelimit.rate_limit_forget()
        time.sleep(1.05 - time.time() % 1)
    raise AssertionError("the second kept turning")


def _others_counted(source: EventSource, second: int, n: int) -> None:
    ratelimit._count(f"cdp:rate:{source.pk}:{second}", n)


def test_a_small_limit_is_counted_exactly_with_the_other_processes() -> None:
    source = _limited(10)

    def attempt() -> list[bool]:
        _others_counted(source, int(time.time()), 8)
        return [ratelimit.rate_limit_allows(source, 1) for _ in range(4)]

    answers, _ = _in_one_second(attempt)
    assert answers == [True, True, False, False]


def test_a_process_admits_at_most_a_fiftieth_of_the_limit_the_others_have_not_heard_of() -> None:
    limit = 1000  # a process adds to the shared count at least every 20 events
    source = _limited(limit)

    def attempt() -> int:
        second = int(time.time())
        assert ratelimit.rate_limit_allows(source, 1)  # the first of a second is told at once
        _others_counted(source, second, limit - 1)  # the others reach the limit meanwhile
        admitted = 0
        while ratelimit.rate_limit_allows(source, 1):
            admitted += 1
            assert admitted <= limit, "never told the shared count"
        return admitted

    admitted, _ = _in_one_second(attempt)
    assert admitted < limit // ratelimit.SYNC_SHARE


def test_alone_a_process_admits_its_limit_exactly_and_not_one_more() -> None:
    source = _limited(2000)

    def attempt() -> tuple[int, int]:
        admitted = sum(ratelimit.rate_limit_allows(source, 1) for _ in range(2100))
        return admitted, int(time.time())

    (admitted, second), _ = _in_one_second(attempt)
    assert admitted == 2000
    # And what the others read: every admitted event was told, save the last few.
    told = ratelimit._count(f"cdp:rate:{source.pk}:{second}", 0)
    assert 2000 - 2000 // ratelimit.SYNC_SHARE <= told <= 2000


def test_a_busy_source_costs_a_round_trip_per_fiftieth_of_its_limit_not_per_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = _limited(2000)
    trips: list[int] = []
    count = ratelimit._count

    def counting(key: str, n_events: int) -> int:
        trips.append(n_events)
        return count(key, n_events)

    monkeypatch.setattr(ratelimit, "_count", counting)

    def attempt() -> float:
        started = time.monotonic()
        assert all(ratelimit.rate_limit_allows(source, 1) for _ in range(400))
        return time.monotonic() - started

    took, _ = _in_one_second(attempt)
    # At most one per 40 events, plus one per 50 ms that the loop took, plus the first.
    assert len(trips) <= 400 // 40 + int(took / ratelimit.SYNC_SECONDS) + 1
    assert sum(trips) <= 400


def test_with_the_shared_cache_down_events_are_accepted(
    monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    source = _limited(5)

    def down(key: str, n_events: int) -> int:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(ratelimit, "_count", down)
    assert all(ratelimit.rate_limit_allows(source, 1) for _ in range(3))
    assert "Rate-limit cache unavailable" in caplog.text
