"""Benchmark (issue 2): ingestion end to end, against what the machine can do at best.

1. Batches: events per second through POST /api/track (500-event batches from concurrent
   clients), committed in PostgreSQL, served by gunicorn with the production settings, and in
   the same run the rate of COPY of the same events into the same table. Target: >= 0.5.
2. Single events: requests per second of one-event POST /api/track against GET /healthz (a
   trivial JSON view) of the same deployment, same run, with wrk. Target: >= 0.6.
3. Processing: events per second through the Celery processing step, with a real
   `celery worker` process.

    DATABASE_URL=postgres://... python -m tests.bench.ingest [--rounds 3] [--skip single,...]

Runs in a throw-away database (<name>_bench_ingest) and a throw-away redis-server, both
created and removed here; gunicorn and the Celery worker are subprocesses on free ports.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

NAME = "ingest"
BATCH_TARGET = 0.5
SINGLE_TARGET = 0.6
BASE_DIR = Path(__file__).resolve().parents[2]
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per part")
    parser.add_argument("--batch-size", type=int, default=500, help="events per batch request")
    parser.add_argument("--batches", type=int, default=40, help="batch requests per round")
    parser.add_argument("--clients", type=int, default=4, help="concurrent batch clients")
    parser.add_argument(
        "--single-rounds",
        type=int,
        default=5,
        help="rounds of the single-event part: a wrk run of each endpoint per round",
    )
    parser.add_argument("--duration", type=int, default=6, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--process-events", type=int, default=20_000, help="events to process")
    parser.add_argument("--workers", type=int, default=0, help="gunicorn workers (0: config)")
    parser.add_argument("--threads", type=int, default=0, help="threads a worker (0: config)")
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: batch,single,processing"
    )


# --- the deployment: a throw-away database, redis-server, gunicorn ------------------------------


def _free_port() -> int:
    from tests.redis_server import free_port

    return free_port()


def _database_url(name: str) -> str:
    """DATABASE_URL with another database name."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{name}"))


def _wait_for_http(port: int, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing answered on port {port} within {timeout} s")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def production_env(database_url: str, redis_url: str) -> dict[str, str]:
    """The environment of a production deployment (DEBUG off, a secret key, allowed hosts)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CELERY_", "GUNICORN_"))
    }
    from cryptography.fernet import Fernet

    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        CDP_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        CDP_HASH_SECRET=secrets.token_urlsafe(32),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(BASE_DIR),
    )
    return env


@contextmanager
def gunicorn(env: dict[str, str], workers: int, threads: int = 0) -> Iterator[int]:
    """gunicorn with cdp/gunicorn.conf.py on a free port; yields the port."""
    port = _free_port()
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "cdp.wsgi",
        "-c",
        str(BASE_DIR / "cdp" / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
    ]
    if workers:
        command += ["--workers", str(workers)]
    if threads:
        command += ["--threads", str(threads)]
    process = subprocess.Popen(command, cwd=BASE_DIR, env=env)
    try:
        _wait_for_http(port, "/healthz")
        yield port
    finally:
        _stop(process)


@contextmanager
def celery_worker(env: dict[str, str], concurrency: int) -> Iterator[None]:
    """`celery -A cdp worker` on the processing queue, as production runs it."""
    command = [
        str(Path(sys.executable).with_name("celery")),
        "-A",
        "cdp",
        "worker",
        "-Q",
        "processing",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    process = subprocess.Popen(command, cwd=BASE_DIR, env=env)
    try:
        yield
    finally:
        _stop(process, signal.SIGQUIT)  # cold shutdown: the benchmark is over


# --- events -------------------------------------------------------------------------------------


def make_events(count: int, run: str, people: int = 2000) -> list[dict[str, Any]]:
    """Realistic native events: page views and clicks with properties and a browser context."""
    start = datetime(2025, 6, 1, tzinfo=UTC)
    events = []
    for n in range(count):
        person = n % people
        events.append(
            {
                "event_name": ("page_view", "product_viewed", "add_to_cart")[n % 3],
                "distinct_id": f"visitor-{person}",
                "message_id": f"{run}-{n}",
                "timestamp": (start + timedelta(seconds=n)).isoformat(),
                "properties": {
                    "path": f"/products/{n % 97}",
                    "price": round(9.99 + n % 50, 2),
                    "in_stock": n % 7 != 0,
                    "tags": ["summer", "sale"],
                },
                "context": {
                    "page": {
                        "url": f"https://shop.example/products/{n % 97}?utm_source=news",
                        "title": "Product page",
                        "referrer": "https://www.google.com/",
                    },
                    "user_agent": USER_AGENTS[person % len(USER_AGENTS)],
                    "locale": "en-US",
                    "timezone": "Europe/Berlin",
                    "screen": {"width": 1920, "height": 1080},
                },
            }
        )
    return events


def _basic_auth(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def _post_batches(port: int, write_key: str, bodies: list[bytes], clients: int) -> float:
    """POST the bodies from `clients` keep-alive connections at once; seconds it took."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    errors: list[str] = []
    headers = {"Content-Type": "application/json", "Authorization": _basic_auth(write_key)}

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if not queue or errors:
                    break
                body = queue.pop()
            conn.request("POST", "/api/track", body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                errors.append(f"{response.status}: {answer[:300]!r}")
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"batch requests failed: {errors[:3]}")
    return took


def _copy_rows(events: list[dict[str, Any]], source_id: str) -> list[tuple[Any, ...]]:
    """The rows the API would store for these events, for COPY, in the order of the columns
    the API's insert writes (named here, so that a new column fails loudly, not silently)."""
    import orjson

    from apps.events.storage import _COLUMNS

    now = datetime.now(tz=UTC)
    rows = []
    for e in events:
        row = {
            "source_id": source_id,
            "message_id": e["message_id"],
            "event_name": e["event_name"],
            "distinct_id": e["distinct_id"],
            "category": "custom",
            "timestamp": e["timestamp"],
            "received_at": now,
            "properties": orjson.dumps(e["properties"]).decode(),
            "context": orjson.dumps({**e["context"], "ip": "127.0.0.1"}).decode(),
            "session_key": "",
            "platform": False,
            "personless": False,
        }
        rows.append(tuple(row[column] for column in _COLUMNS))
    return rows


def _copy(rows: list[tuple[Any, ...]], batch_size: int) -> float:
    """COPY the rows into the events table, one COPY and commit per batch; seconds taken."""
    from django.db import connection, transaction

    from apps.events.storage import _COLUMNS, _TABLE

    sql = f"COPY {_TABLE} ({', '.join(_COLUMNS)}) FROM STDIN"
    started = time.perf_counter()
    for start in range(0, len(rows), batch_size):
        with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            for row in rows[start : start + batch_size]:
                copy.write_row(row)
    return time.perf_counter() - started


def _truncate_events() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE events_event")


def _stored_events() -> int:
    from apps.events.models import Event

    return Event.objects.count()


def bench_batches(port: int, write_key: str, source_id: str, args: argparse.Namespace) -> dict:
    total = args.batch_size * args.batches
    api_rates: list[float] = []
    copy_rates: list[float] = []
    for round_no in range(args.rounds):
        import orjson

        events = make_events(total, run=f"b{round_no}-{uuid.uuid4().hex[:6]}")
        bodies = [
            orjson.dumps({"batch": events[i : i + args.batch_size]})
            for i in range(0, total, args.batch_size)
        ]
        _truncate_events()
        took = _post_batches(port, write_key, bodies, args.clients)
        if _stored_events() != total:
            raise RuntimeError(f"{_stored_events()} events stored of {total} sent")
        api_rates.append(total / took)

        _truncate_events()
        copy_rates.append(total / _copy(_copy_rows(events, source_id), args.batch_size))
        if _stored_events() != total:
            raise RuntimeError("COPY did not store every event")
        _truncate_events()
    api, copy = statistics.median(api_rates), statistics.median(copy_rates)
    return {
        "events_per_round": total,
        "batch_size": args.batch_size,
        "clients": args.clients,
        "api_events_per_s": [round(r) for r in api_rates],
        "copy_events_per_s": [round(r) for r in copy_rates],
        "api_median": round(api),
        "copy_median": round(copy),
        "ratio": round(api / copy, 3),
        "target": BATCH_TARGET,
        "ok": api / copy >= BATCH_TARGET,
    }


# --- single events with wrk ---------------------------------------------------------------------

_WRK_POST = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Write-Key"] = "{write_key}"
"""


def _wrk(url: str, args: argparse.Namespace, script: Path | None = None) -> float:
    command = [
        "wrk",
        "-t2",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--timeout",
        "10s",  # a loaded shared machine stalls a request now and then: slow, not an error
        "--latency",
        url,
    ]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx or 3xx responses" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw errors:\n{output}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    return float(match.group(1))


def bench_single(port: int, write_key: str, args: argparse.Namespace, workdir: Path) -> dict:
    import orjson

    [event] = make_events(1, run="single")
    del event["message_id"]  # every request a new event: the server makes the ids
    script = workdir / "post.lua"
    script.write_text(_WRK_POST.format(body=orjson.dumps(event).decode(), write_key=write_key))
    base = f"http://127.0.0.1:{port}"
    _wrk(f"{base}/healthz", argparse.Namespace(**{**vars(args), "duration": 2}))  # warm-up
    _wrk(f"{base}/api/track", argparse.Namespace(**{**vars(args), "duration": 2}), script)
    trivial: list[float] = []
    track: list[float] = []
    # Each wrk run opens new connections, which gunicorn's workers share out unevenly (one
    # worker may take most of them): that, not the code, moves a run by up to half. The median
    # of several rounds holds; the order alternates so that what one part leaves running in
    # the background (autovacuum after the inserts) weighs on both alike.
    for round_no in range(args.single_rounds):
        if round_no % 2:
            track.append(_wrk(f"{base}/api/track", args, script))
            trivial.append(_wrk(f"{base}/healthz", args))
        else:
            trivial.append(_wrk(f"{base}/healthz", args))
            track.append(_wrk(f"{base}/api/track", args, script))
    t_med, k_med = statistics.median(trivial), statistics.median(track)
    return {
        "connections": args.connections,
        "duration_s": args.duration,
        "healthz_rps": [round(r) for r in trivial],
        "track_rps": [round(r) for r in track],
        "healthz_median": round(t_med),
        "track_median": round(k_med),
        "stored": _stored_events(),
        "ratio": round(k_med / t_med, 3),
        "target": SINGLE_TARGET,
        "ok": k_med / t_med >= SINGLE_TARGET,
    }


# --- processing with a real worker --------------------------------------------------------------


def bench_processing(env: dict[str, str], source_id: str, args: argparse.Namespace) -> dict:
    from django.db import connection
    from django.utils import timezone

    from apps.events import services
    from apps.events.incoming import IncomingEvent, serialize_object
    from apps.events.models import Event
    from apps.events.storage import events_insert

    _truncate_events()
    now = timezone.now()
    ids: list[int] = []
    raw = make_events(args.process_events, run=f"p-{uuid.uuid4().hex[:6]}")
    for start in range(0, len(raw), 1000):
        batch = []
        for e in raw[start : start + 1000]:
            properties, properties_json, _ = serialize_object(e["properties"], "properties")
            context, context_json, _ = serialize_object(e["context"], "context")
            batch.append(
                IncomingEvent(
                    source_id=source_id,
                    message_id=e["message_id"],
                    event_name=e["event_name"],
                    distinct_id=e["distinct_id"],
                    timestamp=datetime.fromisoformat(e["timestamp"]),
                    received_at=now,
                    properties=properties,
                    context=context,
                    properties_json=properties_json,
                    context_json=context_json,
                )
            )
        ids.extend(events_insert(batch))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE events_event")
    concurrency = os.cpu_count() or 2
    with celery_worker(env, concurrency):
        time.sleep(5)  # the worker connects and forks its pool
        started = time.perf_counter()
        if not services.events_publish(ids):
            raise RuntimeError("could not queue the processing tasks")
        deadline = time.monotonic() + 600
        while Event.objects.filter(processed_at__isnull=True).exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not process the events within 10 minutes")
            time.sleep(0.05)
        took = time.perf_counter() - started
    return {
        "events": len(ids),
        "people": 2000,
        "task_batch": int(env.get("CDP_PROCESS_BATCH_SIZE", "1000")),
        "worker_concurrency": concurrency,
        "seconds": round(took, 2),
        "events_per_s": round(len(ids) / took),
    }


# --- run ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace, database_url: str, redis_url: str, workdir: Path) -> dict:
    from apps.sources import services as source_services

    source = source_services.source_create(name="bench", rate_limit_per_second=0)
    env = production_env(database_url, redis_url)
    skip = set(filter(None, args.skip.split(",")))
    result: dict[str, Any] = {"name": NAME, "cpus": os.cpu_count()}
    if not {"batch", "single"} <= skip:
        with gunicorn(env, args.workers, args.threads) as port:
            if "batch" not in skip:
                result["batch"] = bench_batches(port, source.write_key, str(source.pk), args)
            if "single" not in skip:
                _truncate_events()
                result["single"] = bench_single(port, source.write_key, args, workdir)
    if "processing" not in skip:
        result["processing"] = bench_processing(env, str(source.pk), args)
    return result


def report(result: dict[str, Any]) -> str:
    lines = []
    if "batch" in result:
        b = result["batch"]
        lines.append(
            f"batch ingestion: {b['api_median']:,} events/s through POST /api/track "
            f"({b['batch_size']}-event batches, {b['clients']} clients) vs COPY "
            f"{b['copy_median']:,} events/s; ratio {b['ratio']:.2f} (target {b['target']}) -> "
            f"{'OK' if b['ok'] else 'BELOW TARGET'}"
        )
        lines.append(f"  rounds: api {b['api_events_per_s']}, copy {b['copy_events_per_s']}")
    if "single" in result:
        s = result["single"]
        lines.append(
            f"single events: {s['track_median']:,} req/s POST /api/track vs "
            f"{s['healthz_median']:,} req/s GET /healthz; ratio {s['ratio']:.2f} "
            f"(target {s['target']}) -> {'OK' if s['ok'] else 'BELOW TARGET'}"
        )
        lines.append(f"  rounds: track {s['track_rps']}, healthz {s['healthz_rps']}")
    if "processing" in result:
        p = result["processing"]
        lines.append(
            f"processing: {p['events_per_s']:,} events/s ({p['events']:,} events of "
            f"{p['people']:,} people in {p['seconds']} s, tasks of {p['task_batch']}, "
            f"celery worker --concurrency {p['worker_concurrency']})"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("ingest: needs DATABASE_URL=postgres://... (PostgreSQL)", file=sys.stderr)
        return 2
    if shutil.which("redis-server") is None or shutil.which("wrk") is None:
        print("ingest: needs redis-server and wrk installed", file=sys.stderr)
        return 2
    from tests.redis_server import RedisServer

    workdir = Path(tempfile.mkdtemp(prefix="cdp-bench-ingest-"))
    broker = RedisServer(workdir)
    broker.start()
    # This process talks to the throw-away Redis too (it queues the processing tasks).
    os.environ["REDIS_URL"] = broker.url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    db = settings.DATABASES["default"]
    db.setdefault("TEST", {})["NAME"] = f"{db['NAME']}_bench_ingest"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        result = run(args, _database_url(str(db["NAME"])), broker.url, workdir)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(result))
    parts = [result[p] for p in ("batch", "single") if p in result]
    return 0 if all(part["ok"] for part in parts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
