"""Benchmark: deliveries per second to a local webhook (one request per delivery, and batches
of 100), and event processing with one active profile destination against none, in the same
run (target: at most 1.3x).

    DATABASE_URL=postgres://... python -m tests.bench.destinations [--deliveries 2000]
        [--events 2000] [--people 200] [--repeats 3]

Runs in a throw-away database (<name>_bench_destinations), created and dropped here. The
webhook target is a local threaded HTTP server answering 200 and verifying nothing (the cost
measured is ours: claim, sign, send, record). Processing is timed in this process (the
pipeline's service, as the processing task runs it) on `$set` events that change a trait of
each person, so that the profile destination writes a delivery per change; the deliveries are
queued for their own worker (not sent inside processing). Rounds alternate on fresh people;
medians are compared.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

from tests.bench.common import django_setup, throwaway_database

NAME = "destinations"
LIMIT = 1.3
BATCH = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deliveries", type=int, default=2000, help="deliveries per send round")
    parser.add_argument("--events", type=int, default=2000, help="events per processing round")
    parser.add_argument("--people", type=int, default=200, help="distinct ids per round")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per setting")


def _send_round(target: Any, deliveries: int, batch_size: int) -> float:
    from django.utils import timezone

    from apps.destinations import services
    from apps.destinations.models import Delivery

    tag = uuid.uuid4().hex[:6]
    resource = services.resource_create(
        name=f"hook {tag}",
        kind="webhook",
        credentials={
            "url": target.url("/ok"),
            "signing_secrets": [{"secret": services.resources.signing_secret_new()}],
        },
        internal=True,
    )
    destination = services.destination_create(
        name=f"bench {tag}",
        kind="webhook",
        resource=resource,
        trigger="workflow",
        settings={"batch_size": batch_size},
    )
    now = timezone.now()
    Delivery.objects.bulk_create(
        [
            Delivery(
                destination=destination,
                key=f"{tag}-{n}",
                trigger="workflow",
                payload={"type": "workflow", "data": {"n": n, "plan": "pro"}},
                next_attempt_at=now,
            )
            for n in range(deliveries)
        ]
    )
    started = time.perf_counter()
    sent = 0
    while sent < deliveries:
        sent += services.destination_deliver(destination_id=destination.pk, budget_seconds=3600)
    took = time.perf_counter() - started
    assert Delivery.objects.filter(destination=destination, status="delivered").count() == sent
    return deliveries / took


def _ingest(source_id: str, events: int, people: int, tag: str) -> list[int]:
    from django.db import transaction
    from django.utils import timezone

    from apps.events.incoming import IncomingEvent
    from apps.events.storage import events_insert

    now = timezone.now()
    ids: list[int] = []
    for start in range(0, events, BATCH):
        batch = []
        for n in range(start, min(start + BATCH, events)):
            batch.append(
                IncomingEvent(
                    source_id=source_id,
                    message_id=f"{tag}-{n}",
                    event_name="$set",
                    distinct_id=f"{tag}-person-{n % people}",
                    timestamp=now - timedelta(seconds=events - n),
                    received_at=now,
                    properties={"$set": {"visits": n}},
                    properties_json=f'{{"$set": {{"visits": {n}}}}}',
                )
            )
        with transaction.atomic():
            ids.extend(events_insert(batch))
    return ids


def _process_round(source_id: str, args: argparse.Namespace) -> float:
    from apps.pipeline.services import events_process

    tag = uuid.uuid4().hex[:8]
    ids = _ingest(source_id, args.events, args.people, tag)
    started = time.perf_counter()
    for start in range(0, len(ids), BATCH):
        events_process(event_ids=ids[start : start + BATCH])
    return args.events / (time.perf_counter() - started)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from cdp.celery import app as celery_app
    from tests.destinations.target import WebhookTarget

    # Deliveries are queued for their own worker (the broker, or the in-memory transport).
    celery_app.conf.task_always_eager = False
    from apps.destinations import services
    from apps.destinations.models import Destination
    from apps.sources import services as source_services

    result: dict[str, Any] = {"repeats": args.repeats}
    with WebhookTarget() as target:
        single = [_send_round(target, args.deliveries // 4, 1) for _ in range(args.repeats)]
        batched = [_send_round(target, args.deliveries, BATCH) for _ in range(args.repeats)]
        result["single"] = statistics.median(single)
        result["batch"] = statistics.median(batched)
        resource = services.resource_create(
            name="profiles hook",
            kind="webhook",
            credentials={"url": target.url("/ok")},
            internal=True,
        )
        destination = services.destination_create(
            name="profiles",
            kind="webhook",
            resource=resource,
            trigger="profile_changed",
            enabled=False,
        )
        source_id = str(source_services.source_create(name="bench").pk)
        _process_round(source_id, args)  # warm-up
        without, with_destination = [], []
        for _ in range(args.repeats):
            Destination.objects.filter(pk=destination.pk).update(enabled=False)
            without.append(_process_round(source_id, args))
            Destination.objects.filter(pk=destination.pk).update(enabled=True)
            with_destination.append(_process_round(source_id, args))
        written = destination.deliveries.count()
    base, active = statistics.median(without), statistics.median(with_destination)
    result.update(
        without=base,
        with_destination=active,
        ratio=base / active,
        deliveries_written=written,
    )
    return result


def report(result: dict[str, Any]) -> str:
    return (
        f"webhook deliveries/s: {result['single']:.0f} one per request, {result['batch']:.0f} "
        f"in batches of {BATCH}\n"
        f"processing events/s: {result['without']:.0f} without a destination, "
        f"{result['with_destination']:.0f} with one profile destination "
        f"({result['deliveries_written']} deliveries written); ratio {result['ratio']:.2f} "
        f"(target <= {LIMIT}) (medians of {result['repeats']})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog=f"python -m tests.bench.{NAME}")
    add_arguments(parser)
    args = parser.parse_args(sys.argv[1:])
    django_setup(DEBUG="1")
    with throwaway_database("bench_destinations"):
        result = run(args)
    print(report(result), flush=True)
    return 0 if result["ratio"] <= LIMIT else 1


if __name__ == "__main__":
    raise SystemExit(main())
