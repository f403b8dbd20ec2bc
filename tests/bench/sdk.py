"""Benchmark: events per second from one process through the Python SDK (sdk/python) to the
server, against the batch endpoint driven directly from one process, in the same run.

The direct baseline is the best one process can do with one keep-alive connection: the JSON
bodies are built before the clock starts and posted one after the other, uncompressed, with
TCP_NODELAY as HTTP libraries set it. The
SDK's figure covers everything an application pays: each `track()` call (checks, JSON), the
background thread's batching, gzip, the requests, up to `flush()` returning with every event
committed. Target: the SDK reaches at least 0.7x the direct rate (its own per-event work costs
less than a third of what the server spends storing an event).

    DATABASE_URL=postgres://... python -m tests.bench.sdk [--rounds 3] [--events 20000]

Runs in a throw-away database (<name>_bench_sdk) and a throw-away redis-server, created and
removed here; the server is gunicorn with the production settings, on a free port.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.bench.ingest import (
    _basic_auth,
    _database_url,
    _stored_events,
    _truncate_events,
    gunicorn,
    make_events,
    production_env,
)

NAME = "sdk"
TARGET = 0.7


def _direct(port: int, write_key: str, bodies: list[bytes]) -> float:
    """POST the prepared bodies over one keep-alive connection; seconds it took."""
    headers = {"Content-Type": "application/json", "Authorization": _basic_auth(write_key)}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.connect()
    # As HTTP libraries do (and the SDK): no Nagle delay between the headers and the body.
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    started = time.perf_counter()
    for body in bodies:
        conn.request("POST", "/api/track", body=body, headers=headers)
        response = conn.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"batch refused: {response.status} {answer[:300]!r}")
    took = time.perf_counter() - started
    conn.close()
    return took


def _through_sdk(
    port: int, write_key: str, events: list[dict[str, Any]], batch_size: int, gzip: bool
) -> tuple[float, float]:
    """Track every event through a Client, then flush; (seconds in all, seconds spent in the
    track() calls by the calling thread)."""
    from cdp_analytics import Client

    timestamps = [datetime.fromisoformat(e["timestamp"]) for e in events]
    client = Client(
        write_key,
        f"http://127.0.0.1:{port}",
        batch_size=batch_size,
        max_queue_size=len(events) + 1,
        gzip=gzip,
    )
    started = time.perf_counter()
    for event, when in zip(events, timestamps, strict=True):
        client.track(
            event["distinct_id"],
            event["event_name"],
            event["properties"],
            timestamp=when,
            context=event["context"],
            message_id=event["message_id"],
        )
    calls = time.perf_counter() - started
    if not client.flush(timeout=600):
        raise RuntimeError("the SDK did not deliver within 10 minutes")
    took = time.perf_counter() - started
    stats = client.stats()
    client.shutdown()
    if stats.delivered != len(events) or stats.failed or stats.dropped:
        raise RuntimeError(f"the SDK did not deliver every event: {stats}")
    return took, calls


def run(args: argparse.Namespace, database_url: str, redis_url: str) -> dict[str, Any]:
    import orjson

    from apps.sources import services as source_services

    source = source_services.source_create(name="bench", rate_limit_per_second=0)
    env = production_env(database_url, redis_url)
    total = args.events
    rates: dict[str, list[float]] = {"direct": [], "sdk": [], "sdk_plain": [], "calls": []}
    with gunicorn(env, args.workers) as port:
        warm = make_events(2 * args.batch_size, run=f"warm-{uuid.uuid4().hex[:6]}")
        _through_sdk(port, source.write_key, warm, args.batch_size, gzip=True)
        _truncate_events()
        for round_no in range(args.rounds):
            for kind in ("direct", "sdk", "sdk_plain"):
                events = make_events(total, run=f"{kind}{round_no}-{uuid.uuid4().hex[:6]}")
                if kind == "direct":
                    bodies = [
                        orjson.dumps({"batch": events[i : i + args.batch_size]})
                        for i in range(0, total, args.batch_size)
                    ]
                    took = _direct(port, source.write_key, bodies)
                else:
                    took, calls = _through_sdk(
                        port, source.write_key, events, args.batch_size, gzip=kind == "sdk"
                    )
                    if kind == "sdk":
                        rates["calls"].append(total / calls)
                if _stored_events() != total:
                    raise RuntimeError(f"{_stored_events()} events stored of {total} ({kind})")
                rates[kind].append(total / took)
                _truncate_events()
    medians = {kind: statistics.median(values) for kind, values in rates.items()}
    ratio = medians["sdk"] / medians["direct"]
    return {
        "name": NAME,
        "cpus": os.cpu_count(),
        "events_per_round": total,
        "batch_size": args.batch_size,
        "rounds": {kind: [round(r) for r in values] for kind, values in rates.items()},
        "medians": {kind: round(value) for kind, value in medians.items()},
        "ratio": round(ratio, 3),
        "ratio_plain": round(medians["sdk_plain"] / medians["direct"], 3),
        "target": TARGET,
        "ok": ratio >= TARGET,
    }


def report(result: dict[str, Any]) -> str:
    m, r = result["medians"], result["rounds"]
    return "\n".join(
        [
            f"one process, {result['events_per_round']:,} events a round, batches of "
            f"{result['batch_size']}:",
            f"  SDK (gzip, its default): {m['sdk']:,} events/s; without gzip: "
            f"{m['sdk_plain']:,} events/s",
            f"  POST /api/track driven directly (bodies prepared): {m['direct']:,} events/s",
            f"  ratio {result['ratio']:.2f} (without gzip {result['ratio_plain']:.2f}; target "
            f"{result['target']}) -> {'OK' if result['ok'] else 'BELOW TARGET'}",
            f"  track() in the calling thread: {m['calls']:,} calls/s",
            f"  rounds: sdk {r['sdk']}, sdk without gzip {r['sdk_plain']}, direct {r['direct']}",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--events", type=int, default=20_000, help="events per round and kind")
    parser.add_argument("--batch-size", type=int, default=100, help="events per request")
    parser.add_argument("--workers", type=int, default=0, help="gunicorn workers (0: config)")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("sdk: needs DATABASE_URL=postgres://... (PostgreSQL)", file=sys.stderr)
        return 2
    if shutil.which("redis-server") is None:
        print("sdk: needs redis-server installed", file=sys.stderr)
        return 2
    from tests.redis_server import RedisServer

    workdir = Path(tempfile.mkdtemp(prefix="cdp-bench-sdk-"))
    broker = RedisServer(workdir)
    broker.start()
    os.environ["REDIS_URL"] = broker.url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    db = settings.DATABASES["default"]
    db.setdefault("TEST", {})["NAME"] = f"{db['NAME']}_bench_sdk"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        result = run(args, _database_url(str(db["NAME"])), broker.url)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
