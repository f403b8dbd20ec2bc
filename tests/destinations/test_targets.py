"""The Redis stream, SMTP email, PostgreSQL table and Kafka destinations against real local
targets: a throwaway redis-server, an aiosmtpd server, a second PostgreSQL database."""

from __future__ import annotations

import email
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import redis
from aiosmtpd.controller import Controller
from django.conf import settings
from django.test import TestCase

from apps.destinations import services
from apps.destinations.models import Delivery, DeliveryStatus
from apps.profiles.services import people_apply
from tests.destinations.helpers import deliver_all, destination_make
from tests.factories import Sender, profile_of
from tests.redis_server import RedisServer, free_port, redis_server_binary

pytestmark = pytest.mark.django_db


# --- Redis stream -----------------------------------------------------------------------------


@pytest.fixture
def redis_target(tmp_path: Path) -> Iterator[RedisServer]:
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.redis
def test_events_go_to_a_redis_stream_with_an_approximate_maxlen(
    redis_target: RedisServer, send: Sender
) -> None:
    resource = services.resource_create(
        name="stream", kind="redis", credentials={"url": redis_target.url}, internal=True
    )
    destination = destination_make(
        resource, kind="redis_stream", settings={"stream": "cdp:events", "maxlen": 100}
    )
    send.batch([send.event(f"p{i}", name="e", i=i) for i in range(300)])
    deliver_all(destination)
    client = redis.Redis.from_url(redis_target.url)
    entries = client.xrange("cdp:events")
    # Trimmed near 100 entries (approximately: whole macro nodes), never below.
    assert 100 <= len(entries) < 300
    last = entries[-1][1]
    assert last[b"type"] == b"event"
    assert orjson.loads(last[b"payload"])["data"]["event"]["properties"] == {"i": 299}
    keys = {e[1][b"id"].decode() for e in entries}
    assert keys <= set(Delivery.objects.values_list("key", flat=True))
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
    assert services.resource_test(resource=resource)["production"]["ok"] is True


def test_a_resource_on_an_internal_address_is_refused_unless_marked_internal(
    redis_target: RedisServer, send: Sender
) -> None:
    resource = services.resource_create(
        name="stream", kind="redis", credentials={"url": redis_target.url}
    )
    result = services.resource_test(resource=resource)["production"]
    assert result["ok"] is False
    assert "internal address" in result["message"]
    destination = destination_make(resource, kind="redis_stream", settings={"stream": "s"})
    send.track("ann", name="e")
    delivery = Delivery.objects.get(destination=destination)
    assert delivery.status == DeliveryStatus.PENDING
    assert "internal address" in delivery.last_error
    assert redis.Redis.from_url(redis_target.url).exists("s") == 0


# --- SMTP ---------------------------------------------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, _Inbox]]:
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def test_emails_go_to_the_profiles_email_trait_over_smtp(
    smtp: tuple[Controller, _Inbox], send: Sender
) -> None:
    controller, inbox = smtp
    resource = services.resource_create(
        name="mail",
        kind="smtp",
        credentials={
            "host": "127.0.0.1",
            "port": controller.port,
            "from_email": "news@example.com",
        },
        internal=True,
    )
    destination = destination_make(
        resource,
        kind="email",
        trigger="event",
        trigger_config={"filter": {"property": "event.name", "operator": "is", "value": "buy"}},
        settings={
            "subject": "Thanks for {{ event.properties.item }}",
            "body": "Hello {{ profile.traits.first }}, enjoy your {{ event.properties.item }}.",
        },
    )
    send.identify("ann", traits={"email": "ann@example.com", "first": "Ann"})
    send.track("ann", name="buy", item="lamp")
    send.track("nobody", name="buy", item="chair")  # no email: no delivery
    deliver_all(destination)
    assert len(inbox.messages) == 1
    message = inbox.messages[0]
    assert message["To"] == "ann@example.com"
    assert message["Subject"] == "Thanks for lamp"
    assert message.get_payload().strip() == "Hello Ann, enjoy your lamp."
    delivery = Delivery.objects.get(destination=destination)
    assert message["Message-ID"].startswith("<event-")
    assert delivery.status == DeliveryStatus.DELIVERED
    assert services.resource_test(resource=resource)["production"]["ok"] is True


# --- PostgreSQL table ---------------------------------------------------------------------------


@pytest.fixture
def target_db() -> Iterator[str]:
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    db = settings.DATABASES["default"]
    name = f"cdp_target_{uuid.uuid4().hex[:8]}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    base = f"postgresql://{auth}@{db['HOST']}:{db['PORT']}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{base}/{name}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_profiles_are_upserted_into_a_table_created_if_missing(
    target_db: str, send: Sender
) -> None:
    resource = services.resource_create(
        name="warehouse", kind="postgres", credentials={"url": target_db}, internal=True
    )
    destination = destination_make(
        resource,
        kind="postgres_table",
        trigger="profile_changed",
        settings={"table": "crm_profiles", "mode": "profiles"},
    )
    send.identify("ann", traits={"plan": "free"})
    people_ops = {"set": {"plan": "pro"}}
    with TestCase.captureOnCommitCallbacks(execute=True):
        people_apply(distinct_id="ann", ops=people_ops)
    deliver_all(destination)
    with psycopg.connect(target_db) as conn:
        rows = conn.execute("SELECT profile_id, data FROM crm_profiles").fetchall()
    profile = profile_of("ann")
    assert rows == [(str(profile.pk), {"profile": rows[0][1]["profile"]})]
    assert rows[0][1]["profile"]["traits"]["plan"] == "pro"
    # An older state replayed later never overwrites the newer one.
    first = Delivery.objects.filter(destination=destination).order_by("id").first()
    assert first is not None
    Delivery.objects.filter(pk=first.pk).update(status=DeliveryStatus.PENDING, attempts=0)
    deliver_all(destination)
    with psycopg.connect(target_db) as conn:
        data = conn.execute("SELECT data FROM crm_profiles").fetchone()
    assert data is not None
    assert data[0]["profile"]["traits"]["plan"] == "pro"
    # A privacy request forwards the deletion.
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.destinations_profile_deleted(profile.pk, ["ann"])
    deliver_all(destination)
    with psycopg.connect(target_db) as conn:
        assert conn.execute("SELECT count(*) FROM crm_profiles").fetchone() == (0,)


@pytest.mark.postgres
def test_events_are_inserted_once_each(target_db: str, send: Sender) -> None:
    resource = services.resource_create(
        name="warehouse", kind="postgres", credentials={"url": target_db}, internal=True
    )
    destination = destination_make(
        resource, kind="postgres_table", settings={"table": "public.events_out", "mode": "events"}
    )
    send.batch([send.event("ann", name=f"e{i}") for i in range(3)])
    # Sent again (a worker died after the insert, before recording it): no duplicate rows.
    Delivery.objects.update(status=DeliveryStatus.PENDING)
    deliver_all(destination)
    with psycopg.connect(target_db) as conn:
        names = conn.execute("SELECT data->'event'->>'name' FROM events_out ORDER BY 1").fetchall()
    assert names == [("e0",), ("e1",), ("e2",)]


# --- Kafka (optional extra) ---------------------------------------------------------------------


def test_kafka_reports_an_unreachable_broker_as_a_failed_attempt(send: Sender) -> None:
    pytest.importorskip("confluent_kafka")
    resource = services.resource_create(
        name="kafka",
        kind="kafka",
        credentials={"bootstrap_servers": "127.0.0.1:1"},
        internal=True,
    )
    destination = destination_make(resource, kind="kafka", settings={"topic": "cdp", "timeout": 1})
    send.track("ann", name="e")
    delivery = Delivery.objects.get(destination=destination)
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 1
    assert delivery.last_error
