"""Benchmark: processing personless events (no profile, identity or counters) against the same
events with a profile, in the same run: anonymous traffic, new visitors sending a few events
each, processed by the pipeline in worker-sized batches, with the dynamic segments a
deployment has (--segments 0 for none). Personless should cost well under half of what events
with a profile cost.

    DATABASE_URL=postgres://... python -m tests.bench.personless [--events 500] [--repeats 7]

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

NAME = "personless"
LIMIT = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=500, help="events per processed batch")
    parser.add_argument("--per-visitor", type=int, default=5, help="events of each visitor")
    parser.add_argument("--repeats", type=int, default=7, help="timed batches per kind")
    parser.add_argument(
        "--segments",
        type=int,
        default=len(SEGMENTS),
        help=f"dynamic segments defined (0-{len(SEGMENTS)}), as a deployment has some",
    )


# Dynamic segments of the kind every deployment has: events with a profile re-evaluate them
# in real time; personless events never do.
SEGMENTS = (
    'performed "page_view" at_least 3 within_days 30',
    "last_seen in_the_last 7 days",
    'traits.plan is "pro"',
    "event_count greater_than 10",
    "not_performed any within_days 7 and last_seen in_the_last 30 days",
)


def _segments_define(count: int) -> None:
    from apps.segments import services as segment_services
    from apps.segments.filtering import parse_text

    for n, text in enumerate(SEGMENTS[:count]):
        segment_services.segment_create(
            key=f"bench-{n}", name=f"Bench {n}", kind="dynamic", filter=parse_text(text)
        )


def _stored_batch(source_id: str, events: int, per_visitor: int, personless: bool) -> list[int]:
    """Store (unprocessed) `events` page views of new visitors, `per_visitor` each, a minute
    apart, as the tracking endpoints would; returns their ids."""
    from django.utils import timezone

    from apps.events.incoming import IncomingEvent
    from apps.events.storage import events_insert

    run = uuid.uuid4().hex[:10]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    now = timezone.now()
    batch = [
        IncomingEvent(
            source_id=source_id,
            message_id=f"{run}-{n}",
            event_name="page_view",
            distinct_id=f"visitor-{run}-{n // per_visitor}",
            timestamp=start + timedelta(minutes=n % per_visitor),
            received_at=now,
            properties={"path": f"/p/{n % 7}"},
            properties_json=f'{{"path": "/p/{n % 7}"}}',
            context={"page": {"url": f"https://shop.example/p/{n % 7}"}},
            context_json=f'{{"page": {{"url": "https://shop.example/p/{n % 7}"}}}}',
            personless=personless,
        )
        for n in range(events)
    ]
    return events_insert(batch)


def _timed(source_id: str, args: argparse.Namespace, personless: bool) -> float:
    from apps.events.models import Event
    from apps.pipeline.services import events_process
    from apps.profiles.models import Profile

    ids = _stored_batch(source_id, args.events, args.per_visitor, personless)
    profiles_before = Profile.objects.count()
    started = time.perf_counter()
    processed = events_process(event_ids=ids)
    elapsed = time.perf_counter() - started
    made = Profile.objects.count() - profiles_before
    expected = 0 if personless else -(-args.events // args.per_visitor)
    unprocessed = Event.objects.filter(id__in=ids, processed_at__isnull=True).exists()
    if processed != len(ids) or made != expected or unprocessed:
        raise RuntimeError("processing went wrong: the benchmark would time nothing")
    return elapsed


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    """Time events_process for both kinds (interleaved, after a warm-up), compare medians."""
    if args is None:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args([])
    from django.db import connection

    from apps.sources import services as source_services
    from cdp.celery import app as celery_app

    # What processing queues (a segment's first compute, the segment_entered events of real-time
    # entries) runs in-process, not queued to a broker whose worker would find the throw-away
    # database gone: it is work these events cause, timed with them.
    celery_app.conf.task_always_eager = True
    source_id = str(source_services.source_create(name=f"bench {uuid.uuid4().hex[:6]}").pk)
    _segments_define(args.segments)
    _timed(source_id, args, personless=False)  # warm-up: connections, plans, caches
    _timed(source_id, args, personless=True)
    with_profile: list[float] = []
    personless: list[float] = []
    for _ in range(args.repeats):
        with_profile.append(_timed(source_id, args, personless=False))
        personless.append(_timed(source_id, args, personless=True))
    baseline_ms = statistics.median(with_profile) * 1000
    personless_ms = statistics.median(personless) * 1000
    ratio = personless_ms / baseline_ms
    return {
        "name": NAME,
        "database": connection.vendor,
        "events": args.events,
        "per_visitor": args.per_visitor,
        "repeats": args.repeats,
        "segments": args.segments,
        "with_profile_ms": [round(t * 1000, 2) for t in with_profile],
        "personless_ms": [round(t * 1000, 2) for t in personless],
        "with_profile_median_ms": round(baseline_ms, 2),
        "personless_median_ms": round(personless_ms, 2),
        "ratio": round(ratio, 2),
        "limit": LIMIT,
        "ok": ratio <= LIMIT,
    }


def report(result: dict[str, Any]) -> str:
    visitors = -(-result["events"] // result["per_visitor"])
    return (
        f"personless ({result['database']}): a batch of {result['events']} events from "
        f"{visitors} new visitors ({result['segments']} dynamic segments) processed with a "
        f"profile in "
        f"{result['with_profile_median_ms']:.1f} ms, personless in "
        f"{result['personless_median_ms']:.1f} ms (medians of {result['repeats']}); "
        f"ratio {result['ratio']:.2f}x (limit {result['limit']}) -> "
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
    print(f"with a profile (ms): {result['with_profile_ms']}")
    print(f"personless (ms):     {result['personless_ms']}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
