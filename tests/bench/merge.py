"""Benchmark (issue 3): merging a profile with 100,000 events takes no more than 1.5x the time
of merging one with 10 events, because a merge moves identity rows, never event rows.

    DATABASE_URL=postgres://... python -m tests.bench.merge [--large 100000] [--repeats 5]

Runs in a throw-away database (<name>_bench, created and dropped here), never in the
configured one.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.bench.common import django_setup, throwaway_database

NAME = "merge"
LIMIT = 1.5
CHUNK = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--small", type=int, default=10, help="events of the small profile")
    parser.add_argument("--large", type=int, default=100_000, help="events of the large one")
    parser.add_argument("--repeats", type=int, default=7, help="timed merges per size")


def _insert_events(source_id: str, distinct_id: str, count: int) -> None:
    """Store `count` processed events of one person, in bulk statements of CHUNK rows."""
    from django.utils import timezone

    from apps.events.incoming import IncomingEvent
    from apps.events.models import Event
    from apps.events.storage import events_insert

    start = datetime(2025, 1, 1, tzinfo=UTC)
    now = timezone.now()
    for offset in range(0, count, CHUNK):
        batch = [
            IncomingEvent(
                source_id=source_id,
                message_id=f"{distinct_id}-{n}",
                event_name="page_view",
                distinct_id=distinct_id,
                timestamp=start + timedelta(seconds=n),
                received_at=now,
                properties={"path": f"/p/{n % 50}"},
                properties_json=f'{{"path": "/p/{n % 50}"}}',
            )
            for n in range(offset, min(offset + CHUNK, count))
        ]
        events_insert(batch)
    Event.objects.filter(distinct_id=distinct_id).update(processed_at=now)


def _person(source_id: str, events: int) -> Any:
    """A profile whose one distinct_id has `events` events, with its stats counted."""
    from apps.profiles import services

    distinct_id = f"bench-{uuid.uuid4().hex[:12]}"
    _insert_events(source_id, distinct_id, events)
    profile = services.identities_resolve([distinct_id])[distinct_id]
    services.people_apply(distinct_id=distinct_id, ops={"set": {"plan": "pro", "n": events}})
    return services.profile_recount(profile=profile)


def _timed_merge(source_id: str, events: int) -> float:
    from apps.profiles import services

    survivor, merged = _person(source_id, 5), _person(source_id, events)
    started = time.perf_counter()
    merge = services.profile_merge(survivor=survivor, merged=merged, trigger="api")
    elapsed = time.perf_counter() - started
    survivor.refresh_from_db()
    if merge is None or survivor.event_count != events + 5:
        raise RuntimeError("the merge went wrong: the benchmark would time nothing")
    return elapsed


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    """Time profile_merge for both sizes (interleaved, after a warm-up) and compare medians."""
    if args is None:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args([])
    from django.db import connection

    from apps.sources import services as source_services

    source_id = str(source_services.source_create(name=f"bench {uuid.uuid4().hex[:6]}").pk)
    _timed_merge(source_id, args.small)  # warm-up: connections, plans, caches
    small: list[float] = []
    large: list[float] = []
    for _ in range(args.repeats):
        small.append(_timed_merge(source_id, args.small))
        large.append(_timed_merge(source_id, args.large))
    small_ms, large_ms = statistics.median(small) * 1000, statistics.median(large) * 1000
    ratio = large_ms / small_ms
    return {
        "name": NAME,
        "database": connection.vendor,
        "small_events": args.small,
        "large_events": args.large,
        "repeats": args.repeats,
        "small_ms": [round(t * 1000, 2) for t in small],
        "large_ms": [round(t * 1000, 2) for t in large],
        "small_median_ms": round(small_ms, 2),
        "large_median_ms": round(large_ms, 2),
        "ratio": round(ratio, 2),
        "limit": LIMIT,
        "ok": ratio <= LIMIT,
    }


def report(result: dict[str, Any]) -> str:
    return (
        f"merge ({result['database']}): {result['small_events']} events "
        f"{result['small_median_ms']:.2f} ms, {result['large_events']:,} events "
        f"{result['large_median_ms']:.2f} ms (medians of {result['repeats']}); "
        f"ratio {result['ratio']:.2f} (limit {result['limit']}) -> "
        f"{'OK' if result['ok'] else 'TOO SLOW'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    django_setup()
    with throwaway_database("bench"):
        result = run(args)
    print(report(result))
    print(f"small runs (ms): {result['small_ms']}")
    print(f"large runs (ms): {result['large_ms']}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
