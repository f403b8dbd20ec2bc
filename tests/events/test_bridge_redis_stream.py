"""The Redis-stream bridge against a real Redis: entries ingested like /api/track and
acknowledged after commit, unparseable ones dead-lettered with the reason, and nothing lost
when the bridge process is killed (its pending entries are reclaimed and stored once)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from apps.events.bridges.redis_stream import StreamBridge
from apps.events.models import Event
from apps.sources import services as source_services
from apps.sources.models import EventSource
from tests.redis_server import RedisServer, redis_server_binary

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not installed"),
]
BASE_DIR = Path(__file__).resolve().parents[2]
STREAM = "shop-events"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url)


@pytest.fixture
def stream_source(db: None) -> EventSource:
    source = source_services.source_create(name="Shop stream")
    return source_services.source_set_bridge(source=source, bridge="redis-stream")


def add(client: redis.Redis, document: Any, field: str = "data") -> bytes:
    raw = document if isinstance(document, bytes) else orjson.dumps(document)
    return client.xadd(STREAM, {field: raw})


def bridge(source: EventSource, client: redis.Redis, **kwargs: Any) -> StreamBridge:
    return StreamBridge(source=source, client=client, stream=STREAM, block_ms=50, **kwargs)


def pending(client: redis.Redis, group: str = "cdp") -> int:
    return int(client.xpending(STREAM, group)["pending"])


def test_entries_become_events_and_are_acknowledged(
    stream_source: EventSource, client: redis.Redis
) -> None:
    add(client, {"event_name": "order_paid", "distinct_id": "u1", "properties": {"total": 9}})
    add(
        client,
        {
            "batch": [
                {"event_name": "a", "distinct_id": "u2"},
                {"event_name": "b", "distinct_id": "u2"},
            ]
        },
    )
    stats = bridge(stream_source, client).run(idle_exit=0.2)
    assert (stats.entries, stats.ingested, stats.dead_lettered) == (2, 3, 0)
    assert sorted(Event.objects.values_list("event_name", flat=True)) == ["a", "b", "order_paid"]
    assert Event.objects.get(event_name="order_paid").properties == {"total": 9}
    assert pending(client) == 0


def test_the_mapping_applies_to_each_entry(stream_source: EventSource, client: redis.Redis) -> None:
    source_services.source_set_bridge(
        source=stream_source,
        bridge="redis-stream",
        config={"event_name": "order_{{ $.status }}", "distinct_id": "$.customer.id"},
    )
    add(client, {"status": "shipped", "customer": {"id": 7}})
    bridge(stream_source, client).run(idle_exit=0.2)
    event = Event.objects.get()
    assert (event.event_name, event.distinct_id) == ("order_shipped", "7")


@pytest.mark.parametrize(
    ("document", "field", "reason"),
    [
        (b"{not json", "data", "not JSON"),
        ({"event_name": "x"}, "data", "distinct_id"),
        ({"event_name": "x", "distinct_id": "u"}, "payload", "no data field"),
        ([1, 2], "data", "JSON object"),
    ],
)
def test_unparseable_entries_go_to_the_dead_letter_stream_with_the_reason(
    stream_source: EventSource, client: redis.Redis, document: Any, field: str, reason: str
) -> None:
    entry = add(client, document, field=field)
    add(client, {"event_name": "fine", "distinct_id": "u1"})
    stats = bridge(stream_source, client).run(idle_exit=0.2)
    assert (stats.entries, stats.dead_lettered) == (2, 1)
    assert list(Event.objects.values_list("event_name", flat=True)) == ["fine"]
    [(_, dead)] = client.xrange(f"{STREAM}:dead-letter")
    assert reason in dead[b"dead_letter_reason"].decode()
    assert dead[b"dead_letter_entry"] == entry
    assert dead[field.encode()] == (
        document if isinstance(document, bytes) else orjson.dumps(document)
    )
    assert pending(client) == 0


def test_an_entry_read_twice_is_stored_once(
    stream_source: EventSource, client: redis.Redis
) -> None:
    entry = add(client, {"event_name": "order_paid", "distinct_id": "u1"})
    first = bridge(stream_source, client)
    first.ensure_group()
    [(_, [(entry_id, fields)])] = client.xreadgroup("cdp", "a", {STREAM: ">"})
    assert first.handle(entry_id, fields)
    assert first.handle(entry_id, fields)  # redelivered: the same message id
    assert Event.objects.count() == 1
    assert Event.objects.get().message_id == f"{STREAM}:{entry.decode()}"


def test_an_entry_refused_for_now_stays_pending(
    stream_source: EventSource, client: redis.Redis
) -> None:
    stream_source.rate_limit_per_second = 1
    stream_source.save()
    add(client, {"batch": [{"event_name": "a", "distinct_id": "u"}] * 2})
    b = bridge(stream_source, client, retry_pause=0)
    b.ensure_group()
    [(_, [(entry_id, fields)])] = client.xreadgroup("cdp", "cdp-1", {STREAM: ">"})
    assert not b.handle(entry_id, fields)  # over the rate limit: later, not never
    assert pending(client) == 1
    assert not client.exists(f"{STREAM}:dead-letter")


def test_the_command_says_what_to_do_when_misconfigured(
    stream_source: EventSource, server: RedisServer
) -> None:
    rest = source_services.source_create(name="Website")
    with pytest.raises(CommandError, match="set it to Redis stream"):
        call_command(
            "run_bridge", "redis-stream", source=str(rest.pk), stream=STREAM, redis_url=server.url
        )
    with pytest.raises(CommandError, match="No source with id"):
        call_command(
            "run_bridge", "redis-stream", source="nope", stream=STREAM, redis_url=server.url
        )


def _database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_killed_bridge_loses_nothing_and_stores_nothing_twice(
    server: RedisServer, client: redis.Redis
) -> None:
    source = source_services.source_set_bridge(
        source=source_services.source_create(name="Shop stream"), bridge="redis-stream"
    )
    total = 400
    for n in range(total):
        add(
            client,
            {"event_name": "order_paid", "distinct_id": f"u{n % 20}", "properties": {"n": n}},
        )
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": server.url,
        "CDP_ENCRYPTION_KEYS": ",".join(settings.CDP_ENCRYPTION_KEYS),
        "PYTHONPATH": str(BASE_DIR),
    }
    command = [
        sys.executable,
        "manage.py",
        "run_bridge",
        "redis-stream",
        "--source",
        str(source.pk),
        "--stream",
        STREAM,
        "--consumer",
        "doomed",
        "--count",
        "50",
    ]
    process = subprocess.Popen(
        command, cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while Event.objects.count() < 20:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the bridge stored nothing"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(10)
    stored_when_killed = Event.objects.count()
    assert stored_when_killed < total  # killed halfway
    assert pending(client) > 0  # it had read entries it never acknowledged
    # Another consumer takes the dead one's pending entries over, then reads the rest.
    stats = StreamBridge(
        source=source,
        client=client,
        stream=STREAM,
        consumer="survivor",
        claim_idle_ms=0,
        block_ms=50,
    ).run(idle_exit=0.5)
    assert stats.entries > 0
    assert Event.objects.count() == total
    assert sorted(e.properties["n"] for e in Event.objects.all()) == list(range(total))
    assert pending(client) == 0
