"""Benchmark: erasing a person with 100,000 events, in batches, while other ingest goes on.

    DATABASE_URL=postgres://... python -m tests.bench.privacy [--events 100000] [--batch 5000]

An ingest process stores 50-event batches (through the ingest gates, suppression included, and
the same insert as POST /api/track) for a baseline period alone, then again while the main
thread runs a delete request for a person with `--events` events. Measured: the erase's
time and rows/s, its longest batch (one transaction: the longest any of its row locks is
held), the ingest batches stored during the erase and their latency against the baseline,
and (PostgreSQL) every lock on the events table sampled every 5 ms: a lock mode that would
block an insert (SHARE or stronger) fails the benchmark.

Targets: no blocking lock on the events table; ingest goes on (batches stored during the
erase); its p95 latency at most 3x the baseline's; no erase batch longer than 2 s; nothing of
the person left. Runs in a throw-away database (<name>_bench_privacy), never the configured one.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.bench.common import django_setup, throwaway_database

NAME = "privacy"
CHUNK = 10_000
INGEST_BATCH = 50
P95_LIMIT = 3.0
MAX_BATCH_SECONDS = 2.0
# Lock modes that conflict with the ROW EXCLUSIVE lock an INSERT takes.
BLOCKING_MODES = (
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=100_000, help="events of the person")
    parser.add_argument("--batch", type=int, default=5000, help="rows per erase transaction")
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds of ingest alone")


def _incoming(source_id: str, distinct_id: str, n: int, now: datetime) -> Any:
    from apps.events.incoming import IncomingEvent

    return IncomingEvent(
        source_id=source_id,
        message_id=f"{distinct_id}-{n}",
        event_name="page_view",
        distinct_id=distinct_id,
        timestamp=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=n),
        received_at=now,
        properties={"path": f"/p/{n % 50}"},
        properties_json=f'{{"path": "/p/{n % 50}"}}',
    )


def _person(source_id: str, events: int) -> str:
    """A profile with one id and `events` stored, processed events (bulk statements)."""
    from django.utils import timezone

    from apps.events.models import Event
    from apps.events.storage import events_insert
    from apps.profiles import services

    distinct_id = f"erase-me-{uuid.uuid4().hex[:8]}"
    now = timezone.now()
    for offset in range(0, events, CHUNK):
        events_insert(
            [
                _incoming(source_id, distinct_id, n, now)
                for n in range(offset, min(offset + CHUNK, events))
            ]
        )
    Event.objects.filter(distinct_id=distinct_id).update(processed_at=now)
    services.identities_resolve([distinct_id])
    services.people_apply(distinct_id=distinct_id, ops={"set": {"plan": "pro"}})
    return distinct_id


def _ingest_loop(source_id: str, stop: Any, out: Any) -> None:
    """In a process of its own (as the web server is): store batches of other people's
    events until stopped, sending (wall-clock start, seconds) per batch."""
    from django.db import connection
    from django.utils import timezone

    from apps.events.hooks import ingest_gates_apply
    from apps.events.storage import events_store
    from apps.sources.models import EventSource

    source = EventSource.objects.get(pk=source_id)
    n = 0
    timings: list[tuple[float, float]] = []
    try:
        while not stop.is_set():
            now = timezone.now()
            batch = [
                _incoming(source_id, f"visitor-{(n + i) % 997}", n + i, now)
                for i in range(INGEST_BATCH)
            ]
            n += INGEST_BATCH
            started = time.time()
            kept, _ = ingest_gates_apply(source=source, events=batch)
            events_store(kept)
            timings.append((started, time.time() - started))
        out.put(("ok", timings))
    except BaseException as exc:  # reported by the main process
        out.put(("error", repr(exc)))
    finally:
        connection.close()


def _close_connections() -> None:
    """Before forking: a child must not share the parent's database sockets."""
    from django.db import connections

    for connection in connections.all():
        connection.close()
        if hasattr(connection, "close_pool"):
            connection.close_pool()


class LockWatch(threading.Thread):
    """Samples pg_locks on the events table (PostgreSQL): the modes seen, and how often an
    insert waited for a lock."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.modes: dict[str, int] = {}
        self.waiting = 0
        self.samples = 0

    def run(self) -> None:
        from django.db import connection

        try:
            with connection.cursor() as cursor:
                while not self.stop.is_set():
                    # Table locks only: 'extend' locks (growing the file) are not table locks.
                    cursor.execute(
                        "SELECT mode, granted FROM pg_locks WHERE locktype = 'relation' "
                        "AND relation = 'events_event'::regclass AND pid <> pg_backend_pid()"
                    )
                    for mode, granted in cursor.fetchall():
                        self.modes[mode] = self.modes.get(mode, 0) + 1
                        self.waiting += 0 if granted else 1
                    self.samples += 1
                    time.sleep(0.005)
        finally:
            connection.close()


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    if args is None:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args([])
    from django.conf import settings
    from django.db import connection

    from apps.consents.models import PrivacyRequest
    from apps.consents.privacy import erase, services
    from apps.consents.privacy.erase import person_counts
    from apps.consents.privacy.person import person_resolve
    from apps.sources import services as source_services

    settings.CDP_PRIVACY_DELETE_BATCH = args.batch
    source = source_services.source_create(name=f"bench {uuid.uuid4().hex[:6]}")
    victim = _person(str(source.pk), args.events)
    request = PrivacyRequest.objects.create(
        kind="delete", distinct_id=victim, subject_digest="bench"
    )

    _close_connections()
    context = multiprocessing.get_context("fork")
    stop, out = context.Event(), context.Queue()
    ingest = context.Process(target=_ingest_loop, args=(str(source.pk), stop, out))
    ingest.start()
    time.sleep(args.baseline)
    erase_started = time.time()
    watch = LockWatch() if connection.vendor == "postgresql" else None
    if watch:
        watch.start()
    # Each batch of the events' erase is timed: from the call (or the previous batch's end)
    # to its progress report, which follows its commit.
    batches: list[float] = []
    original = erase.delete_in_batches

    def timed(queryset: Any, *, table: str, progress: Any, batch: int | None = None) -> int:
        last = [time.perf_counter()]

        def mark(name: str, n: int) -> None:
            if name == "events":
                batches.append(time.perf_counter() - last[0])
            progress(name, n)
            last[0] = time.perf_counter()

        return original(queryset, table=table, progress=mark, batch=batch)

    erase.delete_in_batches = timed  # type: ignore[assignment]
    try:
        services.privacy_request_run(request_id=request.pk)
    finally:
        erase.delete_in_batches = original  # type: ignore[assignment]
    erase_ended = time.time()
    if watch:
        watch.stop.set()
        watch.join()
    time.sleep(1.0)  # a little ingest after, then stop
    stop.set()
    status, timings = out.get(timeout=60)
    ingest.join()
    if status != "ok":
        raise RuntimeError(f"ingest failed during the benchmark: {timings}")

    request.refresh_from_db()
    left = sum(person_counts(person_resolve(distinct_id=victim)).values())
    baseline = [s for t, s in timings if t < erase_started]
    during = [s for t, s in timings if erase_started <= t <= erase_ended]
    erase_seconds = erase_ended - erase_started
    blocking = {m: c for m, c in (watch.modes if watch else {}).items() if m in BLOCKING_MODES}
    p95_ratio = (_p95(during) / _p95(baseline)) if during and baseline else float("inf")
    result = {
        "name": NAME,
        "database": connection.vendor,
        "events": args.events,
        "batch": args.batch,
        "status": request.status,
        "deleted_events": request.counts.get("events", 0),
        "left": left,
        "erase_s": round(erase_seconds, 2),
        "rows_per_s": round(request.counts.get("events", 0) / erase_seconds),
        "erase_batches": len(batches),
        "longest_batch_ms": round(max(batches) * 1000, 1) if batches else 0.0,
        "median_batch_ms": round(statistics.median(batches) * 1000, 1) if batches else 0.0,
        "ingest_batches_baseline": len(baseline),
        "ingest_batches_during": len(during),
        "ingest_baseline_per_s": round(len(baseline) * INGEST_BATCH / args.baseline),
        "ingest_during_per_s": round(len(during) * INGEST_BATCH / erase_seconds),
        "ingest_p50_baseline_ms": round(statistics.median(baseline) * 1000, 2),
        "ingest_p50_during_ms": round(statistics.median(during) * 1000, 2) if during else None,
        "ingest_p95_baseline_ms": round(_p95(baseline) * 1000, 2),
        "ingest_p95_during_ms": round(_p95(during) * 1000, 2) if during else None,
        "ingest_max_during_ms": round(max(during) * 1000, 2) if during else None,
        "p95_ratio": round(p95_ratio, 2),
        "lock_samples": watch.samples if watch else 0,
        "lock_modes_seen": watch.modes if watch else {},
        "inserts_waiting_samples": watch.waiting if watch else 0,
        "blocking_locks": blocking,
    }
    result["ok"] = bool(
        request.status == "done"
        and left == 0
        and request.counts.get("events") == args.events
        and not blocking
        and during
        and p95_ratio <= P95_LIMIT
        and (max(batches) if batches else 0) <= MAX_BATCH_SECONDS
    )
    return result


def report(result: dict[str, Any]) -> str:
    return (
        f"privacy erase ({result['database']}): {result['deleted_events']:,} events in "
        f"{result['erase_s']} s ({result['rows_per_s']:,} rows/s, {result['erase_batches']} "
        f"batches, longest {result['longest_batch_ms']} ms); ingest during the erase: "
        f"{result['ingest_batches_during']} batches, p95 {result['ingest_p95_during_ms']} ms vs "
        f"{result['ingest_p95_baseline_ms']} ms alone (ratio {result['p95_ratio']}, limit "
        f"{P95_LIMIT}); blocking locks {result['blocking_locks'] or 'none'}; left "
        f"{result['left']} -> {'OK' if result['ok'] else 'FAILED'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    from cryptography.fernet import Fernet

    # The suppression key is stored encrypted: a throw-away key unless one is configured (so
    # that DEBUG=1 writes none into the checkout's .env).
    django_setup(CDP_ENCRYPTION_KEYS=Fernet.generate_key().decode())
    with throwaway_database("bench_privacy"):
        result = run(args)
    print(report(result))
    for key, value in result.items():
        print(f"  {key}: {value}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
